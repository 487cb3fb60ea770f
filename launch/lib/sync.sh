# shellcheck shell=bash
# Sourced by launch/tpu.sh: plan_sync, what `sync` sends (tracked files as on disk, untracked ones only
# where named) and what it refuses (secrets, oversized bundles). Uses tpu.sh's globals and die().

if stat --printf '' /dev/null 2> /dev/null; then  # GNU stat
  sizes() {  # NUL-separated paths in, "size\0path\0" out
    xargs -0 -r stat --printf '%s\0%n\0' --
  }
else  # BSD stat (macOS)
  sizes() {
    local f
    while IFS= read -r -d '' f; do printf '%s\0%s\0' "$(stat -f %z "$f")" "$f"; done
  }
fi

join() {  # join SEPARATOR WORD...: the words with the separator between them
  local sep="$1" out="${2:-}" word
  shift 2 || true
  for word in "$@"; do out+="$sep$word"; done
  printf '%s' "$out"
}

megabytes() {  # megabytes BYTES: "12.3 MB" (10^6 bytes), "4.2 kB" or "312 bytes"
  awk -v b="$1" 'BEGIN {
    if (b >= 1e6) printf "%.1f MB", b / 1e6; else if (b >= 1e3) printf "%.1f kB", b / 1e3; else printf "%d bytes", b }'
}

secret_name() {  # secret_name PATH: true for a file name that holds keys or credentials by convention
  case "${1##*/}" in
    *.pem | *.key | *.p12 | *.pfx | id_rsa* | id_dsa* | id_ecdsa* | id_ed25519* | .env | .env.* | .envrc \
      | .netrc | .pypirc | .npmrc | .git-credentials | credentials | *credential*.json | *secret*.json)
      return 0 ;;
  esac
  return 1
}

# plan_sync: the files sync sends, in SEND (paths relative to the checkout) and SEND_BYTES; prints
# the summary (and with --dry-run every file) on stderr, and refuses secrets and oversized bundles.
SEND=()
SEND_BYTES=0
SYNC_TARBALL=""
plan_sync() {
  git -C "$REPO" rev-parse --git-dir > /dev/null 2>&1 \
    || die "sync copies the files of a git checkout, and $REPO is not one."
  local specs=() spec line f size i hits
  specs=("${INCLUDES[@]+"${INCLUDES[@]}"}")
  local from=()  # where each spec came from, for the error
  for spec in "${specs[@]+"${specs[@]}"}"; do from+=("--include '$spec'"); done
  if [[ -f "$REPO/$INCLUDE_LIST" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
      line="${line%$'\r'}"
      [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
      specs+=("$line")
      from+=("$INCLUDE_LIST's line '$line'")
    done < "$REPO/$INCLUDE_LIST"
  fi

  local -A tracked=() named=()
  while IFS= read -r -d '' f; do tracked[$f]=1; done < <(git -C "$REPO" ls-files -z --cached)
  for i in "${!specs[@]}"; do
    hits=0
    # Untracked files under the spec, ignored ones too: naming a path is the user's choice.
    while IFS= read -r -d '' f; do
      named[$f]=1
      hits=1
    done < <(git -C "$REPO" ls-files -z --others -- "${specs[$i]}" 2> /dev/null)
    if [[ "$hits" == 0 ]] && ! git -C "$REPO" ls-files --error-unmatch -- "${specs[$i]}" > /dev/null 2>&1; then
      die "${from[$i]} matches no file in $REPO (paths are relative to the checkout's root)."
    fi
  done

  local sizes_=()
  SEND=()
  SEND_BYTES=0
  while IFS= read -r -d '' size && IFS= read -r -d '' f; do
    SEND+=("$f")
    sizes_+=("$size")
    SEND_BYTES=$((SEND_BYTES + size))
  done < <(
    cd "$REPO"
    {
      for f in "${!tracked[@]}"; do
        if [[ -f "$f" ]]; then printf '%s\0' "$f"; fi  # as on disk: a deleted tracked file is not sent
      done
      for f in "${!named[@]}"; do printf '%s\0' "$f"; done
    } | sort -z | sizes
  )
  [[ ${#SEND[@]} -gt 0 ]] || die "sync found no file to send in $REPO."

  # Secrets: by name, then by content in files up to 1 MB (PEM private keys; JSON with a private_key,
  # as in service-account keys).
  local -A secret=()
  local small=() small_json=()
  for i in "${!SEND[@]}"; do
    f="${SEND[$i]}"
    if secret_name "$f"; then
      secret[$f]=1
    elif [[ "${sizes_[$i]}" -le 1000000 ]]; then
      small+=("$f")
      [[ "$f" == *.json ]] && small_json+=("$f")
    fi
  done
  while IFS= read -r -d '' f; do secret[$f]=1; done < <(
    cd "$REPO"
    if [[ ${#small[@]} -gt 0 ]]; then
      printf '%s\0' "${small[@]}" | xargs -0 grep -lE --null 'BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----' -- || true
    fi
    if [[ ${#small_json[@]} -gt 0 ]]; then
      printf '%s\0' "${small_json[@]}" | xargs -0 grep -l --null '"private_key"' -- || true
    fi
  )

  local n_named=0
  for i in "${!SEND[@]}"; do
    f="${SEND[$i]}"
    [[ -n "${named[$f]:-}" ]] && n_named=$((n_named + 1))
    if [[ "$DRY_RUN" == 1 ]]; then
      printf -v line '%12s  %s' "${sizes_[$i]}" "$f"
      [[ -n "${named[$f]:-}" ]] && line+="  (untracked, named)"
      [[ -n "${secret[$f]:-}" ]] && line+="  (looks like a secret)"
      echo "$line" >&2
    fi
  done
  echo "$PROG: sync: ${#SEND[@]} files, $(megabytes "$SEND_BYTES") ($((${#SEND[@]} - n_named)) tracked," \
    "$n_named untracked named by --include or $INCLUDE_LIST)." >&2

  # Untracked files git does not ignore and nobody named: left out, said once, grouped by top folder.
  local -A groups=()
  local skipped=0 key
  while IFS= read -r -d '' f; do
    [[ -n "${named[$f]:-}" ]] && continue
    skipped=$((skipped + 1))
    key="${f%%/*}"
    [[ "$f" == */* ]] && key+="/"
    groups[$key]=$((${groups[$key]:-0} + 1))
  done < <(git -C "$REPO" ls-files -z --others --exclude-standard)
  if [[ "$skipped" -gt 0 ]]; then
    local shown=() more=""
    while IFS= read -r key; do
      if [[ "$key" == */ ]]; then shown+=("$key (${groups[$key]} files)"); else shown+=("$key"); fi
    done < <(printf '%s\n' "${!groups[@]}" | sort | head -n 5)
    [[ ${#groups[@]} -gt 5 ]] && more=", ..."
    echo "$PROG: not sent: $skipped untracked files ($(join ", " "${shown[@]}")$more); name what the" \
      "workers need with --include PATH or in $INCLUDE_LIST." >&2
  fi

  if [[ ${#secret[@]} -gt 0 ]]; then
    local listed=()
    while IFS= read -r f; do
      if [[ -n "${tracked[$f]:-}" ]]; then listed+=("$f (tracked)"); else listed+=("$f"); fi
    done < <(printf '%s\n' "${!secret[@]}" | sort)
    if [[ "$ALLOW_SECRETS" == 1 ]]; then
      echo "$PROG: sending ${#secret[@]} file(s) that look like secrets, as --allow-secrets says: $(join ", " "${listed[@]}")." >&2
    else
      die "refusing to send ${#secret[@]} file(s) that look like secrets: $(join ", " "${listed[@]}"); pass --allow-secrets to send them, or leave them out (untracked: do not name them; tracked: git rm --cached)."
    fi
  fi
  if [[ "$SEND_BYTES" -gt $((MAX_SYNC_MB * 1000000)) ]]; then
    die "the bundle is $(megabytes "$SEND_BYTES"), over the $MAX_SYNC_MB MB limit; see its files with --dry-run, and pass --max-sync-mb $(((SEND_BYTES + 999999) / 1000000)) (or set SALSA_SYNC_MAX_MB) to send it anyway."
  fi
}
