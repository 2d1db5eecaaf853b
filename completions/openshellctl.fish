# fish completion for openshellctl. The candidates come from openshellctl itself
# (`openshellctl __complete WORD...`): commands and options from its command table, sandbox,
# policy, provider and route names from the daemon, as you see them.
function __openshellctl_complete
    set -l words (commandline -opc)
    set -e words[1]
    set -l current (commandline -ct)
    set -l candidates (command openshellctl __complete $words "$current" 2>/dev/null)
    switch "$candidates[1]"
        case :files
            __fish_complete_path "$current"
        case :dirs
            __fish_complete_directories "$current"
        case '*'
            printf '%s\n' $candidates
    end
end
complete -c openshellctl -f -a '(__openshellctl_complete)'
