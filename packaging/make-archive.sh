#!/bin/sh
# The download of the light app: one compressed archive of its folder. Usage: make-archive.sh FOLDER ARCHIVE.tar.xz
set -eu
folder=$1 archive=$2
parent=$(dirname "$folder") name=$(basename "$folder")
tmp="$archive.part"
trap 'rm -f "$tmp"' EXIT
XZ_OPT="-6 -T0" tar -C "$parent" --owner=0 --group=0 --numeric-owner -cJf "$tmp" "$name"
mv "$tmp" "$archive"
trap - EXIT
