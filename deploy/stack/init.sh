#!/bin/sh
# One-shot setup of The Things Stack's database for the compose stacks:
# migrations, the first admin user, the console's OAuth client, whose
# redirect URIs are idgate's public URL (PUBLIC_URL, default
# http://localhost:8080, without a trailing slash), and idgate's admin API
# key. Safe to run again: create-admin-user and create-oauth-client update
# what already exists, so every run also resets the admin's password to the
# one below; the API key is made only when its file does not exist yet, so
# a re-run keeps the key idgate already uses. Any failure stops the run,
# and with it the stack and idgate, which wait for this to succeed.
#
# The API key (the stack's own is-db create-user-api-key: all rights of the
# admin user, a root credential) goes to $IDGATE_KEY_FILE (default
# /run/idgate-tts/admin-api-key) on a named volume that only this service
# and idgate mount; idgate reads it through `[tts] api_key_file`. The file
# holds the key alone, owned by $IDGATE_KEY_OWNER (default 10001:10001,
# idgate's user in its image) with mode 0400. This service runs as root
# for that chown; the stack's command prints the key on stdout only (its own
# log line with the key is an Info line, kept out with --log.level warn),
# and nothing here prints it. To replace the key, delete the file (or the
# volume) and run this again; then revoke the old key in the stack. A new
# stack database needs a new key too: `docker compose down -v` removes
# both volumes.
set -eu
PUBLIC_URL="${PUBLIC_URL:-http://localhost:8080}"
PUBLIC_URL="${PUBLIC_URL%/}"
KEY_FILE="${IDGATE_KEY_FILE:-/run/idgate-tts/admin-api-key}"
KEY_OWNER="${IDGATE_KEY_OWNER:-10001:10001}"
stack() { ttn-lw-stack -c /config/ttn-lw-stack-docker.yml "$@"; }
stack is-db migrate
stack is-db create-admin-user --id admin --email admin@localhost --password admin-password-change-me
stack is-db create-oauth-client --id console --name Console --owner admin --secret console \
  --redirect-uri "$PUBLIC_URL/console/oauth/callback" --redirect-uri /console/oauth/callback \
  --logout-redirect-uri "$PUBLIC_URL/console" --logout-redirect-uri /console

if [ -s "$KEY_FILE" ]; then
  echo "idgate's API key: kept ($KEY_FILE exists)"
else
  umask 077
  KEY_DIR="$(dirname "$KEY_FILE")"
  mkdir -p "$KEY_DIR"
  # --output-format takes a Go template instead of the default "json":
  # {{.Key}} is the key alone (ttnpb.APIKey.Key), followed by a newline.
  key="$(stack is-db create-user-api-key --user-id admin --name idgate \
    --output-format '{{.Key}}' --log.level warn)"
  case "$key" in
    NNSXS.*.*) ;;
    *)
      echo "idgate's API key: the stack printed no key in the expected form (NNSXS.…); nothing written" >&2
      exit 1
      ;;
  esac
  tmp="$KEY_DIR/.admin-api-key.$$"
  trap 'rm -f "$tmp"' EXIT
  printf '%s\n' "$key" >"$tmp"
  chown "$KEY_OWNER" "$tmp"
  chmod 0400 "$tmp"
  mv -f "$tmp" "$KEY_FILE"
  chown "$KEY_OWNER" "$KEY_DIR"
  chmod 0700 "$KEY_DIR"
  echo "idgate's API key: created for user admin, written to $KEY_FILE"
fi
