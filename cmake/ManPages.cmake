# The man pages: scdoc sources in docs/man/ (the version filled in), roff in <build>/man/,
# installed under share/man. tests/unit/ctl/man_page_test.cpp keeps the sources true to the
# binaries, the shipped openshelld.toml and the policy language.
find_program(OPENSHELL_SCDOC scdoc REQUIRED)  # Debian: scdoc (.ci/install-deps)
set(OPENSHELL_MAN_PAGES openshellctl.1 openshelld.8 openshell-supervisor.8 openshell-policy.5
                        openshelld.toml.5)
set(OPENSHELL_MAN_OUTPUTS)
foreach(page IN LISTS OPENSHELL_MAN_PAGES)
  set(source ${PROJECT_SOURCE_DIR}/docs/man/${page}.scd)
  set(filled ${PROJECT_BINARY_DIR}/man/${page}.scd)
  set(output ${PROJECT_BINARY_DIR}/man/${page})
  configure_file(${source} ${filled} @ONLY)
  add_custom_command(OUTPUT ${output}
                     COMMAND sh -c "${OPENSHELL_SCDOC} < '${filled}' > '${output}'"
                     DEPENDS ${filled} VERBATIM)
  list(APPEND OPENSHELL_MAN_OUTPUTS ${output})
  string(REGEX MATCH "[0-9]$" section ${page})
  install(FILES ${output} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${OPENSHELL_MAN_OUTPUTS})
