//! The shared service credential on internal gRPC. Every call between services carries
//! `authorization: Bearer <FLOWPLANE_SERVICE_TOKEN>`; servers refuse calls without it, so a
//! process that can reach the port still cannot speak for a user.

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

const HEADER: &str = "authorization";

#[derive(Clone)]
pub struct ServiceCredential {
    header: MetadataValue<tonic::metadata::Ascii>,
}

impl ServiceCredential {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        if secret.len() < 16 {
            anyhow::bail!("the service credential must be at least 16 characters");
        }
        let header = format!("Bearer {secret}").parse()?;
        Ok(Self { header })
    }

    /// Adds the credential to outgoing calls.
    pub fn client(&self) -> ClientCredential {
        ClientCredential(self.header.clone())
    }

    /// Checks the credential on incoming calls.
    pub fn server(&self) -> ServerCredential {
        ServerCredential(self.header.clone())
    }
}

#[derive(Clone)]
pub struct ClientCredential(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for ClientCredential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(HEADER, self.0.clone());
        Ok(request)
    }
}

#[derive(Clone)]
pub struct ServerCredential(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for ServerCredential {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match request.metadata().get(HEADER) {
            Some(presented) if constant_time_eq(presented.as_bytes(), self.0.as_bytes()) => {
                Ok(request)
            }
            _ => Err(Status::unauthenticated(
                "missing or invalid service credential",
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_accepts_only_the_shared_secret() {
        let cred = ServiceCredential::new("0123456789abcdef-secret")
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut client = cred.client();
        let mut server = cred.server();
        let request = client
            .call(Request::new(()))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(server.call(request).is_ok());
        assert!(server.call(Request::new(())).is_err());
        let other = ServiceCredential::new("another-secret-value-here")
            .unwrap_or_else(|e| unreachable!("{e}"));
        let forged = other
            .client()
            .call(Request::new(()))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            server.call(forged).map_err(|s| s.code()).err(),
            Some(tonic::Code::Unauthenticated)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ServiceCredential::new("short").is_err());
    }
}
