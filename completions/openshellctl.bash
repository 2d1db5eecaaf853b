# bash completion for openshellctl. The candidates come from openshellctl itself
# (`openshellctl __complete WORD...`): commands and options from its command table, sandbox,
# policy, provider and route names from the daemon, as you see them.
_openshellctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} candidates
  local IFS=$'\n'
  candidates=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
  case $candidates in
    :files) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
    :dirs) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$candidates" -- "$cur")) ;;
  esac
}
complete -F _openshellctl openshellctl
