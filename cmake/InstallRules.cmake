install(TARGETS openshell-supervisor RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/policy-examples/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/openshell/policy-examples FILES_MATCHING PATTERN "*.toml")
