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
# commit: offline, it says how to push later.
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
  if command -v timeout >/dev/null 2>&1; then
    timeout "${MODELSYNC_PUSH_TIMEOUT:-120}" git push "$ms_remote" "$ms_branch"
  else
    git push "$ms_remote" "$ms_branch"
  fi || echo "modelsync: push failed (offline?); the commit is kept. Push it later with: git push $ms_remote $ms_branch" >&2
  return 0
}
