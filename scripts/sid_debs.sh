# Sourced by the scripts that check the shim against Debian sid's packages:
# sid_download DIR PACKAGE... downloads the packages' .deb files into DIR/debs
# with a private apt configuration under DIR (sid main, contrib, non-free),
# leaving the system's sources, lists and packages alone.
sid_download() {
  local W=$1; shift
  mkdir -p "$W/lists/partial" "$W/cache/archives/partial" "$W/debs"
  echo 'deb http://deb.debian.org/debian sid main contrib non-free' > "$W/sources.list"
  local A=(-o Dir::Etc::sourcelist="$W/sources.list" -o Dir::Etc::sourceparts=/dev/null
           -o Dir::State::Lists="$W/lists" -o Dir::Cache="$W/cache" -o APT::Sandbox::User=root)
  apt-get "${A[@]}" update -qq
  (cd "$W/debs" && apt-get "${A[@]}" download "$@")
}
