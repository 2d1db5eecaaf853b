#!/usr/bin/env bash
# The completion scripts (completions/) in their shells: each completes a command and an option
# of the built openshellctl, asking it through `openshellctl __complete`.
#
#   completion_shells_test.sh COMPLETIONS_DIR DIR_OF_OPENSHELLCTL
set -uo pipefail
completions=${1:?usage: completion_shells_test.sh COMPLETIONS_DIR CTL_DIR}
export PATH=${2:?}:$PATH
failures=0
expect() {  # expect SHELL WHAT GOT WANTED
  if [[ $3 == *"$4"* ]]; then
    echo "ok: $1 $2"
  else
    echo "FAILED: $1 $2: wanted '$4', got '$3'"
    failures=$((failures + 1))
  fi
}
for shell in bash zsh fish; do
  command -v "$shell" >/dev/null || { echo "FAILED: $shell is not installed (.ci/install-deps)"; exit 1; }
done

# bash: call the completion function as bash's programmable completion would.
bash_complete() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _openshellctl
           printf "%s\n" "${COMPREPLY[@]}"' _ "$completions/openshellctl.bash" "$@"
}
expect bash "a subcommand" "$(bash_complete openshellctl sandbox cr)" create
expect bash "an option" "$(bash_complete openshellctl sandbox create x --policy-f)" --policy-file
expect bash "path names for upload" "$(cd "$completions/.." && bash_complete openshellctl upload s complet)" completions

# fish: its own `complete -C` answers what a TAB would offer.
fish_complete() {
  fish -c "source $completions/openshellctl.fish; complete -C '$1'"
}
expect fish "a subcommand" "$(fish_complete 'openshellctl sandbox cr')" create
expect fish "an option" "$(fish_complete 'openshellctl sandbox create x --policy-f')" --policy-file

# zsh: an interactive zsh on a pseudo-terminal (zpty), TAB typed, the edited line read back.
zsh_complete() {
  zsh -f -c '
    zmodload zsh/zpty
    zpty z zsh -f -i
    zpty -w z "PS1=\"> \"; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
    zpty -w z "$2"$'"'"'\t'"'"'
    out=
    for i in {1..50}; do
      while zpty -r -t z chunk; do out+=$chunk; done
      [[ $out == *"$3"* ]] && break
      sleep 0.1
    done
    zpty -d z
    print -r -- "$out"' _ "$completions" "$1" "$2"
}
expect zsh "a subcommand" "$(zsh_complete 'openshellctl sandbox cr' 'sandbox create')" "sandbox create"
expect zsh "an option" "$(zsh_complete 'openshellctl sandbox create x --policy-f' 'x --policy-file')" "x --policy-file"

((failures == 0)) || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
