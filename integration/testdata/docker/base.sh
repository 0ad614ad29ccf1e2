#!/bin/sh
# Builds the test tier's base image from Debian's packages (there is no registry to pull
# from): debootstrap a minimal bookworm, install packages.txt with services kept from
# starting inside the chroot, and import the tree as image $1.
set -eu
tag=$1
here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/entry-base.XXXXXX)
chmod 755 "$root" # the chroot's / must be traversable by its own users
log=$root.log
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf --one-file-system "$root" "$log"' EXIT
fail() { tail -40 "$log"; exit 1; }

debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log" 2>&1 || fail
# Packages' maintainer scripts must not start their daemons in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
grep -v '^#' "$here/packages.txt" | xargs chroot "$root" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends >>"$log" 2>&1 || fail
umount "$root/proc"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root/usr/sbin/policy-rc.d"
# python:3.12-slim is not an "externally managed" environment: pip installs into it.
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
tar -C "$root" -c . | docker import \
	-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
	-c 'CMD ["python3"]' - "$tag" >/dev/null
