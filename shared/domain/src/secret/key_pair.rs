//! Whether a private key belongs to a certificate, decided from the key's own encoding: an RSA
//! key carries its modulus and exponent, and an EC key usually carries its public point (OpenSSL,
//! rcgen and ring write it). When the key does not say (an Ed25519 key, an EC key written
//! without its point), the answer is "unknown" and Envoy remains the judge: a pair is refused
//! only when it provably does not match.

use x509_cert::der::asn1::AnyRef;
use x509_cert::der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};

/// DER bodies of the object identifiers involved.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

#[derive(Debug, PartialEq, Eq)]
enum PublicKey {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    /// The encoded EC point.
    Ec(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Pkcs1,
    Sec1,
    Pkcs8,
}

/// `Some(false)` when the private key (DER, of `kind`) provably does not belong to the
/// certificate (DER); `None` when its encoding does not tell.
pub(super) fn belongs_to(certificate: &[u8], key: &[u8], kind: KeyKind) -> Option<bool> {
    let public = certificate_key(certificate)?;
    let private = private_key(key, kind)?;
    Some(public == private)
}

fn certificate_key(der: &[u8]) -> Option<PublicKey> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let spki = cert.tbs_certificate.subject_public_key_info;
    let bits = spki.subject_public_key.raw_bytes();
    match spki.algorithm.oid.as_bytes() {
        RSA_ENCRYPTION => rsa_public(bits),
        EC_PUBLIC_KEY => Some(PublicKey::Ec(bits.to_vec())),
        _ => None,
    }
}

fn private_key(der: &[u8], kind: KeyKind) -> Option<PublicKey> {
    match kind {
        KeyKind::Pkcs1 => rsa_private(der),
        KeyKind::Sec1 => ec_private(der),
        // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, … }
        KeyKind::Pkcs8 => {
            let fields = sequence(der)?;
            let algorithm = elements(fields.get(1)?.value())?;
            let inner = fields.get(2)?.value();
            match algorithm.first()?.value() {
                RSA_ENCRYPTION => rsa_private(inner),
                EC_PUBLIC_KEY => ec_private(inner),
                _ => None,
            }
        }
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
fn rsa_public(der: &[u8]) -> Option<PublicKey> {
    let fields = sequence(der)?;
    Some(PublicKey::Rsa {
        modulus: fields.first()?.value().to_vec(),
        exponent: fields.get(1)?.value().to_vec(),
    })
}

/// `RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, … }`
fn rsa_private(der: &[u8]) -> Option<PublicKey> {
    let fields = sequence(der)?;
    Some(PublicKey::Rsa {
        modulus: fields.get(1)?.value().to_vec(),
        exponent: fields.get(2)?.value().to_vec(),
    })
}

/// `ECPrivateKey ::= SEQUENCE { version, privateKey, [0] parameters OPTIONAL,
/// [1] publicKey BIT STRING OPTIONAL }`
fn ec_private(der: &[u8]) -> Option<PublicKey> {
    let explicit_one = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N1,
    };
    let fields = sequence(der)?;
    let public = fields.iter().find(|f| f.tag() == explicit_one)?;
    let bits = AnyRef::from_der(public.value()).ok()?;
    if bits.tag() != Tag::BitString {
        return None;
    }
    // A BIT STRING's content starts with its count of unused bits (0 for a key).
    match bits.value().split_first()? {
        (0, point) => Some(PublicKey::Ec(point.to_vec())),
        _ => None,
    }
}

/// The elements of the DER `SEQUENCE` that is all of `der`.
fn sequence(der: &[u8]) -> Option<Vec<AnyRef<'_>>> {
    let sequence = AnyRef::from_der(der).ok()?;
    if sequence.tag() != Tag::Sequence {
        return None;
    }
    elements(sequence.value())
}

/// The DER elements, one after another, that make up `body`.
fn elements(body: &[u8]) -> Option<Vec<AnyRef<'_>>> {
    let mut reader = SliceReader::new(body).ok()?;
    let mut found = Vec::new();
    while !reader.is_finished() {
        found.push(AnyRef::decode(&mut reader).ok()?);
    }
    Some(found)
}
