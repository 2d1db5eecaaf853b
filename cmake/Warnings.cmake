# Warnings for our own targets only; third-party headers come in as SYSTEM.
function(openshell_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wshadow -Wformat=2 -Wnon-virtual-dtor -Wcast-qual
    -Wold-style-cast -Wimplicit-fallthrough)
  # GCC 12 at -O3 reports std::string appends as overlapping memcpy (GCC PR 105329, fixed in
  # 13): a false positive in libstdc++'s own code that breaks the release build under -Werror.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(OPENSHELL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
