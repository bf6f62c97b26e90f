#!/bin/sh
# layers.sh - enforce the include direction of the code (common/README.md):
#
#   common/base/      includes only base/
#   common/mail/      includes base/ and mail/
#   common/delivery/  includes base/, mail/ and delivery/
#   PROG/             includes common's layers and its own folder, never
#                     another program's headers (nor any "../" path)
#
# and nothing but README.md directly in common/. Prints every violation as
# "file:line: ..." and exits 1 when there is one. Usage: layers.sh [ROOT]
set -u
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2

bad=0
report() {
    echo "layers: $1" >&2
    bad=1
}

for f in common/*; do
    case "$f" in
    common/base | common/mail | common/delivery | common/README.md) ;;
    *) report "$f: common/ holds only base/, mail/, delivery/ and README.md" ;;
    esac
done

# allowed_layers DIR: the common layers a file in DIR may include
allowed_layers() {
    case "$1" in
    common/base) echo "base" ;;
    common/mail) echo "base mail" ;;
    common/delivery) echo "base mail delivery" ;;
    *) echo "base mail delivery" ;;
    esac
}

for dir in common/base common/mail common/delivery master smtpd qmgr dnsd deliver relay local signer smtpctl sendmail postdrop; do
    [ -d "$dir" ] || continue
    ok=$(allowed_layers "$dir")
    for f in "$dir"/*.c "$dir"/*.h "$dir"/*.def; do
        [ -f "$f" ] || continue
        # file:line:header for every quoted include
        out=$(awk -v f="$f" '/^[[:space:]]*#[[:space:]]*include[[:space:]]*"/ {
                h = $0; sub(/^[^"]*"/, "", h); sub(/".*/, "", h); print f ":" NR ":" h }' "$f")
        [ -n "$out" ] || continue
        echo "$out" | while IFS= read -r rec; do
            h=${rec##*:}
            where=${rec%:*}
            case "$h" in
            */*)
                layer=${h%%/*}
                case " $ok " in
                *" $layer "*) ;;
                *)
                    echo "layers: $where: \"$h\": $dir may include only: $ok" >&2
                    echo x
                    ;;
                esac
                ;;
            *)
                # a bare name: a header of the file's own folder
                if [ ! -f "$dir/$h" ]; then
                    echo "layers: $where: \"$h\" is not in $dir/ (name common's headers by layer: \"base/$h\")" >&2
                    echo x
                fi
                ;;
            esac
        done | grep -q x && bad=1
    done
done
[ "$bad" -eq 0 ] && exit 0
exit 1
