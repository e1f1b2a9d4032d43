#!/bin/sh
# Prints a fresh .env for compose.yaml: config's service secret, each other service's own
# credential derived from it (as `flowplane service-credential` derives it), and the key that
# seals stored secrets. Keep the file: stored secrets and Envoy bootstraps depend on it.
#   sh deploy/compose-env.sh > deploy/.env
set -eu
secret=$(openssl rand -hex 24)
credential() {
  printf 'fpsvc_%s_%s' "$1" "$(printf '%s:flowplane-service-credential-v1:%s' "$secret" "$1" | sha256sum | cut -d' ' -f1)"
}
echo "FLOWPLANE_SERVICE_SECRET=$secret"
echo "FLOWPLANE_SECRETS_KEY=$(openssl rand -base64 32)"
echo "API_GATEWAY_CREDENTIAL=$(credential api-gateway)"
echo "XDS_SERVER_CREDENTIAL=$(credential xds-server)"
echo "LEARNING_CREDENTIAL=$(credential learning)"
echo "RATELIMIT_CREDENTIAL=$(credential ratelimit)"
