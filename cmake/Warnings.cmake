# Warnings for our own targets only; third-party headers come in as SYSTEM.
function(openshell_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wshadow -Wformat=2 -Wnon-virtual-dtor -Wcast-qual
    -Wold-style-cast -Wimplicit-fallthrough)
  if(OPENSHELL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
