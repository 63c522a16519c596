#!/bin/sh
# One-shot setup of The Things Stack's database for the compose stacks:
# migrations, the first admin user and the console's OAuth client, whose
# redirect URIs are idgate's public URL. Safe to run again.
set -e
stack() { ttn-lw-stack -c /config/ttn-lw-stack-docker.yml "$@"; }
stack is-db migrate
stack is-db create-admin-user --id admin --email admin@localhost --password admin-password-change-me || true
stack is-db create-oauth-client --id console --name Console --owner admin --secret console \
  --redirect-uri http://localhost:8080/console/oauth/callback --redirect-uri /console/oauth/callback \
  --logout-redirect-uri http://localhost:8080/console --logout-redirect-uri /console || true
