#!/bin/sh
# One-shot setup of The Things Stack's database for the compose stacks:
# migrations, the first admin user and the console's OAuth client, whose
# redirect URIs are idgate's public URL (PUBLIC_URL, default
# http://localhost:8080, without a trailing slash). Safe to run again:
# create-admin-user and create-oauth-client update what already exists, so
# every run also resets the admin's password to the one below. Any failure
# stops the run, and with it the stack, which waits for this to succeed.
set -eu
PUBLIC_URL="${PUBLIC_URL:-http://localhost:8080}"
PUBLIC_URL="${PUBLIC_URL%/}"
stack() { ttn-lw-stack -c /config/ttn-lw-stack-docker.yml "$@"; }
stack is-db migrate
stack is-db create-admin-user --id admin --email admin@localhost --password admin-password-change-me
stack is-db create-oauth-client --id console --name Console --owner admin --secret console \
  --redirect-uri "$PUBLIC_URL/console/oauth/callback" --redirect-uri /console/oauth/callback \
  --logout-redirect-uri "$PUBLIC_URL/console" --logout-redirect-uri /console
