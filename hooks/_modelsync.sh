# Shared by the modelsync git hooks (sourced, not run). POSIX sh.
#
# The hooks are installed with `git config core.hooksPath hooks`, which
# replaces .git/hooks: that is why each one also calls git-lfs's own hook,
# or LFS objects would silently stop being uploaded on push.

# Run modelsync: $MODELSYNC_BIN (a command, may carry arguments), then the
# script recorded by `modelsync init` (git config modelsync.bin), then
# `modelsync` on PATH, then the project's own copy through npx. Returns 127
# (as a shell does for a missing command) with a message saying what was
# tried when none of them is there: a registry repository is often cloned
# where modelsync's node_modules are not.
run_modelsync() {
  if [ -n "${MODELSYNC_BIN:-}" ]; then
    # shellcheck disable=SC2086 # word splitting is wanted: "node /opt/modelsync/bin/modelsync.js"
    $MODELSYNC_BIN "$@"
    return $?
  fi
  ms_tried="MODELSYNC_BIN (unset)"
  ms_bin=$(git config --get modelsync.bin 2>/dev/null || true)
  if [ -n "$ms_bin" ] && [ -f "$ms_bin" ]; then
    case "$ms_bin" in
      *.js)
        if command -v node >/dev/null 2>&1; then
          node "$ms_bin" "$@"
          return $?
        fi
        ms_tried="$ms_tried, git config modelsync.bin ($ms_bin, but node is not on PATH)"
        ;;
      *)
        "$ms_bin" "$@"
        return $?
        ;;
    esac
  elif [ -n "$ms_bin" ]; then
    ms_tried="$ms_tried, git config modelsync.bin ($ms_bin does not exist)"
  else
    ms_tried="$ms_tried, git config modelsync.bin (unset)"
  fi
  if command -v modelsync >/dev/null 2>&1; then
    command modelsync "$@"
    return $?
  fi
  ms_tried="$ms_tried, modelsync on PATH (not found)"
  if command -v npx >/dev/null 2>&1 && npx --no-install modelsync --version >/dev/null 2>&1; then
    npx --no-install modelsync "$@"
    return $?
  fi
  ms_tried="$ms_tried, npx --no-install modelsync (not installed here)"
  echo "modelsync: cannot find the modelsync command; tried $ms_tried." >&2
  echo "modelsync: set MODELSYNC_BIN (e.g. MODELSYNC_BIN=\"node /opt/modelsync/bin/modelsync.js\"), or git config modelsync.bin <path to bin/modelsync.js>, or put modelsync on PATH." >&2
  return 127
}

# Why a run of modelsync from a hook failed, from its exit status ($1); the
# caller says what it refuses ($2: "commit", "push") and optionally what was
# checked ($3: "refs/heads/main (1a2b…)").
explain_failure() {
  ms_what=${3:+"$3: "}
  case "$1" in
    1) echo "modelsync: $2 refused: ${ms_what}the registry is invalid (see above)." >&2 ;;
    126 | 127) echo "modelsync: $2 refused: ${ms_what}modelsync could not be run to validate the registry (see above)." >&2 ;;
    *) echo "modelsync: $2 refused: ${ms_what}modelsync could not validate the registry (exit $1, see above)." >&2 ;;
  esac
}

have_git_lfs() {
  command -v git-lfs >/dev/null 2>&1
}

# git-lfs's own hook of the same name, when git-lfs is installed.
run_git_lfs_hook() {
  ms_hook=$1
  shift
  if have_git_lfs; then
    git lfs "$ms_hook" "$@"
    return $?
  fi
  echo "modelsync: git-lfs is not installed; skipping 'git lfs $ms_hook' (install git-lfs: model files are LFS objects)" >&2
  return 0
}

# The branch sites follow: git config modelsync.branch (set by init), else
# the remote's default branch, else main.
default_branch() {
  ms_b=$(git config --get modelsync.branch 2>/dev/null || true)
  if [ -z "$ms_b" ]; then
    ms_b=$(git symbolic-ref --quiet --short refs/remotes/origin/HEAD 2>/dev/null | sed 's|^[^/]*/||')
  fi
  echo "${ms_b:-main}"
}

# After a commit on the default branch that changed what sites run, push it
# at once (that is what makes sites update immediately). Never fails the
# commit: when the push fails it says why (credentials, a rejected push, the
# pre-push hook, a timeout, or the network) and how to push later.
autopush() {
  [ "$(git config --bool modelsync.autopush 2>/dev/null)" = "false" ] && return 0
  [ -n "${MODELSYNC_NO_AUTOPUSH:-}" ] && return 0
  # Not in the middle of a rebase or cherry-pick sequence: push the result, not each step.
  for ms_d in rebase-merge rebase-apply sequencer; do
    [ -e "$(git rev-parse --git-path "$ms_d")" ] && return 0
  done
  ms_branch=$(git symbolic-ref --quiet --short HEAD 2>/dev/null) || return 0
  [ "$ms_branch" = "$(default_branch)" ] || return 0
  ms_remote=$(git config --get "branch.$ms_branch.remote" 2>/dev/null || true)
  [ -n "$ms_remote" ] || ms_remote=$(git remote 2>/dev/null | head -n 1)
  [ -n "$ms_remote" ] || return 0
  if git rev-parse -q --verify HEAD^ >/dev/null 2>&1; then
    ms_changed=$(git diff --name-only HEAD^ HEAD -- registry sites templates)
  else
    ms_changed=$(git ls-tree -r --name-only HEAD -- registry sites templates)
  fi
  [ -n "$ms_changed" ] || return 0
  echo "modelsync: registry changed on $ms_branch; pushing to $ms_remote so sites update now" >&2
  # git push's output still reaches the terminal as it comes, and is kept to say why a push failed.
  ms_tmp=$(mktemp -d "${TMPDIR:-/tmp}/modelsync-push.XXXXXX" 2>/dev/null) || ms_tmp=
  if [ -n "$ms_tmp" ]; then
    {
      push_now "$ms_remote" "$ms_branch" 2>&1
      echo $? >"$ms_tmp/rc"
    } | tee "$ms_tmp/log" >&2
    ms_rc=$(cat "$ms_tmp/rc" 2>/dev/null)
  else
    push_now "$ms_remote" "$ms_branch"
    ms_rc=$?
  fi
  if [ "${ms_rc:-1}" != 0 ]; then
    ms_later="the commit is kept; push it later with: git push $ms_remote $ms_branch"
    case "$(push_failure_kind "${ms_rc:-1}" "${ms_tmp:-/nonexistent}/log")" in
      credentials) echo "modelsync: push to $ms_remote was refused: the credentials were missing or rejected (check the token or password for $ms_remote, e.g. in the remote URL or a git credential helper); $ms_later" >&2 ;;
      rejected) echo "modelsync: push to $ms_remote was rejected: $ms_remote has commits this branch does not (git pull --rebase first); $ms_later" >&2 ;;
      hook) echo "modelsync: push to $ms_remote was refused by the pre-push hook (see above); $ms_later" >&2 ;;
      timeout) echo "modelsync: push to $ms_remote timed out after ${MODELSYNC_PUSH_TIMEOUT:-120}s (slow or offline?); $ms_later" >&2 ;;
      declined) echo "modelsync: push to $ms_remote was refused by the server (a protected branch or a server-side hook; see git's output above); $ms_later" >&2 ;;
      network) echo "modelsync: push to $ms_remote failed: could not reach it (offline, or a wrong URL?); $ms_later" >&2 ;;
      *) echo "modelsync: push to $ms_remote failed (see git's output above); $ms_later" >&2 ;;
    esac
  fi
  [ -z "$ms_tmp" ] || rm -rf "$ms_tmp"
  return 0
}

# No terminal prompt: under timeout git runs in a background process group and
# could never read one, so a missing password would read as a timeout. Credential
# helpers still answer.
push_now() {
  if command -v timeout >/dev/null 2>&1; then
    GIT_TERMINAL_PROMPT=0 timeout "${MODELSYNC_PUSH_TIMEOUT:-120}" git push "$1" "$2"
  else
    GIT_TERMINAL_PROMPT=0 git push "$1" "$2"
  fi
}

# Why `git push` failed, from its exit status ($1) and output ($2, a file):
# credentials, rejected, hook, declined, timeout, network, or other. Git and
# git-lfs word these differently across versions and servers, hence several
# patterns each, and "other" rather than a guess when none matches.
push_failure_kind() {
  if [ "$1" = 124 ]; then
    echo timeout
  elif grep -qE '^modelsync: push refused' "$2" 2>/dev/null; then
    echo hook
  elif grep -qiE 'authentication failed|could not read (username|password)|terminal prompts disabled|HTTP (basic: )?access denied|(error|HTTP|status)[: ]+40[13]([^0-9]|$)|\(40[13]\)|unauthorized|forbidden|authorization error|credentials (for .* )?not found|permission denied \(publickey' "$2" 2>/dev/null; then
    echo credentials
  elif grep -qiE 'remote rejected|hook declined|protected branch' "$2" 2>/dev/null; then
    echo declined
  elif grep -qiE '\[rejected\]|non-fast-forward|fetch first' "$2" 2>/dev/null; then
    echo rejected
  elif grep -qiE 'could not resolve|connection refused|failed to connect|connection timed out|network is unreachable|no route to host|could not read from remote repository|does not appear to be a git repository|empty reply|connection reset' "$2" 2>/dev/null; then
    echo network
  else
    echo other
  fi
}
