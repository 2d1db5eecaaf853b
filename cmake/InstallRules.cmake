# What `cmake --install` puts where (and so what the packages ship). Install with --prefix /usr:
# units/openshelld.service names /usr/bin/openshelld and the defaults in openshelld.toml name
# /usr/libexec/openshell/openshell-supervisor. The configuration goes to /etc/openshell whatever
# the prefix, where the daemon looks for it.
set(OPENSHELL_LIBEXEC ${CMAKE_INSTALL_LIBEXECDIR}/openshell)
install(TARGETS openshell-supervisor RUNTIME DESTINATION ${OPENSHELL_LIBEXEC})
install(TARGETS openshellctl openshelld RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The supervisor also runs standalone (`openshell-supervisor run ...`): on the PATH as well.
install(CODE "file(CREATE_LINK ../libexec/openshell/openshell-supervisor
  \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/openshell-supervisor\" SYMBOLIC)")

set(OPENSHELL_UNITS ${PROJECT_SOURCE_DIR}/units)
# Debian 12's packaging helpers look for units in /lib/systemd/system (the deb sets it); other
# distributions keep them under the prefix (/usr/lib/systemd/system).
set(OPENSHELL_SYSTEMD_UNITDIR lib/systemd/system CACHE STRING "Where the systemd units go")
install(FILES ${OPENSHELL_UNITS}/openshelld.service ${OPENSHELL_UNITS}/openshell.slice
        DESTINATION ${OPENSHELL_SYSTEMD_UNITDIR})
install(FILES ${OPENSHELL_UNITS}/org.openshell.Manager1.conf
        DESTINATION ${CMAKE_INSTALL_DATADIR}/dbus-1/system.d)
install(FILES ${OPENSHELL_UNITS}/sysusers.d/openshell.conf DESTINATION lib/sysusers.d)
install(FILES ${OPENSHELL_UNITS}/tmpfiles.d/openshell.conf DESTINATION lib/tmpfiles.d)
install(FILES ${OPENSHELL_UNITS}/openshelld.toml
        DESTINATION /etc/openshell)
# The default policy, so that `openshellctl sandbox create NAME` works out of the box.
install(FILES ${PROJECT_SOURCE_DIR}/policy-examples/default.toml
        DESTINATION /etc/openshell/policies)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/policy-examples/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/openshell/policy-examples FILES_MATCHING PATTERN "*.toml")
install(FILES ${PROJECT_SOURCE_DIR}/docs/dbus-api.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# Shell completion (completions/): each asks `openshellctl __complete`. Debian's zsh looks in
# vendor-completions (the deb sets it); elsewhere site-functions.
set(OPENSHELL_ZSH_COMPLETIONDIR ${CMAKE_INSTALL_DATADIR}/zsh/site-functions
    CACHE STRING "Where the zsh completion goes")
install(FILES ${PROJECT_SOURCE_DIR}/completions/openshellctl.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME openshellctl)
install(FILES ${PROJECT_SOURCE_DIR}/completions/_openshellctl
        DESTINATION ${OPENSHELL_ZSH_COMPLETIONDIR})
install(FILES ${PROJECT_SOURCE_DIR}/completions/openshellctl.fish
        DESTINATION ${CMAKE_INSTALL_DATADIR}/fish/vendor_completions.d)
