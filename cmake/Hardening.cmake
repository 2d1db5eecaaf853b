# Hardening for every binary we ship: PIE, stack protector, FORTIFY, full RELRO.
add_compile_options(-fstack-protector-strong -fstack-clash-protection -fcf-protection)
if(NOT OPENSHELL_SANITIZE)
  add_compile_definitions($<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
endif()
add_link_options(-Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack -pie)
