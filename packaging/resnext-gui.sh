#!/bin/sh
# The standalone app's `resnext-gui`: checks that this system's C library is new enough, then starts the app
# (`resnext-gui.bin` beside this script, PyInstaller's executable). The bundled Python needs glibc 2.35 or
# newer; on an older system PyInstaller's loader would die with the dynamic loader's error (exit 255), before
# any Python can run. This check uses only the system's own tools and says what is needed instead.
NEED=2.35
EXIT_OLD_SYSTEM=6
REQUIREMENT="Debian 12, Ubuntu 22.04 or newer"

# The folder of this script, also when started through a link to it (~/bin/resnext-gui -> .../resnext-gui).
self=$(readlink -f -- "$0" 2>/dev/null)
[ -n "$self" ] || self=$0
case $self in */*) here=${self%/*} ;; *) here=. ;; esac
app="$here/resnext-gui.bin"

# This system's glibc version ("2.31"), "musl" for musl, or nothing when neither tool says.
libc_version() {
  v=$(getconf GNU_LIBC_VERSION 2>/dev/null)  # "glibc 2.31"
  case $v in
    glibc\ [0-9]*) printf '%s\n' "${v##* }"; return ;;
  esac
  v=$(ldd --version 2>&1 | head -n 1)  # "ldd (Debian GLIBC 2.31-13+deb11u5) 2.31"; musl: "musl libc (x86_64)"
  case $v in
    *musl*) echo musl ;;
    *GLIBC*|*"GNU libc"*|*"GNU C Library"*) printf '%s\n' "${v##* }" ;;
  esac
}

# Whether version $1 ("2.31", "2.39.9000") is older than $NEED; not a version: no.
older() {
  case $1 in *.*) ;; *) return 1 ;; esac
  major=${1%%.*}; rest=${1#*.}; minor=${rest%%[!0-9]*}
  need_major=${NEED%%.*}; need_minor=${NEED#*.}
  case $major$minor in ''|*[!0-9]*) return 1 ;; esac
  [ -n "$minor" ] || return 1
  [ "$major" -lt "$need_major" ] || { [ "$major" -eq "$need_major" ] && [ "$minor" -lt "$need_minor" ]; }
}

# The message on stderr; without a terminal (started from a menu) also in the start-up log and a dialog.
tell() {
  printf '%s\n' "$1" >&2
  [ -t 2 ] && return
  shown=$1
  case ${XDG_STATE_HOME:-} in /*) state=$XDG_STATE_HOME ;; *) state=${HOME:-}/.local/state ;; esac
  log="$state/resnext-gui/startup-error.log"
  if mkdir -p "${log%/*}" 2>/dev/null &&
     { date '+%Y-%m-%dT%H:%M:%S'; printf '%s\n\n' "$1"; } >>"$log" 2>/dev/null; then
    shown="$1

(This message is also in $log.)"
  fi
  title="ResNeXt Classifier cannot start"
  if command -v zenity >/dev/null 2>&1; then
    zenity --error --no-markup --title="$title" --text="$shown" </dev/null >/dev/null 2>&1
  elif command -v kdialog >/dev/null 2>&1; then
    kdialog --title "$title" --error "$shown" </dev/null >/dev/null 2>&1
  elif command -v notify-send >/dev/null 2>&1; then
    notify-send --urgency=critical --app-name=resnext-gui "$title" "$shown" </dev/null >/dev/null 2>&1
  fi
}

version=$(libc_version)
if [ "$version" = musl ]; then
  tell "resnext-gui: this system's C library is musl, not glibc; this app needs glibc $NEED or newer ($REQUIREMENT)"
  exit $EXIT_OLD_SYSTEM
fi
if older "$version"; then
  tell "resnext-gui: this system's C library (glibc $version) is older than the $NEED this app needs ($REQUIREMENT)"
  exit $EXIT_OLD_SYSTEM
fi
if [ ! -x "$app" ]; then
  tell "resnext-gui: $app is missing; copy the whole resnext-gui folder, not just this file"
  exit 127
fi
exec "$app" "$@"
