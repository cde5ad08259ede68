#!/bin/sh
# Start redis-server with the users of redis-users.acl.in (an admin `default` user and the
# restricted `aftersales` user), passwords taken from the environment:
#   REDIS_ADMIN_PASSWORD         password of the `default` (admin) user
#   AFTERSALES_REDIS_PASSWORD    password of the `aftersales` user
# Optional: REDIS_ACL_FILE (rendered file, default /tmp/redis-users.acl), REDIS_SERVER
# (binary, default redis-server on PATH). Other arguments go to redis-server unchanged:
#   sh deploy/redis-start.sh --appendonly yes --port 6379
# Only SHA-256 digests are written; the rendered file is readable by its owner only.
set -eu

: "${REDIS_ADMIN_PASSWORD:?REDIS_ADMIN_PASSWORD is not set}"
: "${AFTERSALES_REDIS_PASSWORD:?AFTERSALES_REDIS_PASSWORD is not set}"
template="$(dirname "$0")/redis-users.acl.in"
acl="${REDIS_ACL_FILE:-/tmp/redis-users.acl}"

digest() { printf '%s' "$1" | sha256sum | cut -d ' ' -f 1; }

umask 077
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$template" | sed \
    -e "s/@ADMIN_PASSWORD_SHA256@/$(digest "$REDIS_ADMIN_PASSWORD")/" \
    -e "s/@AFTERSALES_PASSWORD_SHA256@/$(digest "$AFTERSALES_REDIS_PASSWORD")/" >"$acl"
exec "${REDIS_SERVER:-redis-server}" "$@" --aclfile "$acl"
