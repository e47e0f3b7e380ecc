# Victims of the loader tests (issue 18 point 1, issue 17 point 7):
# test_dlcaller.py and test_bypass.py.

# The plugin, next to the executables (found by their $ORIGIN), and a copy
# in dlplugins/ that only libmt_dlloader.so's own RUNPATH finds.
add_library(mt_dlplugin MODULE ${P}/dlplugin.c)
target_compile_options(mt_dlplugin PRIVATE -O0 -g)
set_target_properties(mt_dlplugin PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${MT_PROGRAMS_DIR})
add_library(mt_dlplugin2 MODULE ${P}/dlplugin.c)
target_compile_options(mt_dlplugin2 PRIVATE -O0 -g)
set_target_properties(mt_dlplugin2 PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${MT_PROGRAMS_DIR}/dlplugins)
add_library(mt_dlloader SHARED ${P}/dlloader.c)
target_compile_options(mt_dlloader PRIVATE -O0 -g)
target_link_libraries(mt_dlloader PRIVATE ${CMAKE_DL_LIBS})
target_link_options(mt_dlloader PRIVATE -Wl,--enable-new-dtags)
set_target_properties(mt_dlloader PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${MT_PROGRAMS_DIR}
                      SKIP_BUILD_RPATH TRUE BUILD_WITH_INSTALL_RPATH TRUE
                      INSTALL_RPATH "\$ORIGIN/dlplugins")
list(APPEND MT_VICTIMS mt_dlplugin mt_dlplugin2 mt_dlloader)

# The caller: with DT_RPATH $ORIGIN, with DT_RUNPATH $ORIGIN, and with
# neither (its plugin found by LD_LIBRARY_PATH).
foreach(variant rpath runpath)
  memtrace_victim(dl_caller_${variant} SOURCES ${P}/dl_caller.c OPTIONS -DDL_CALLER_LOADER
                  LINK ${CMAKE_DL_LIBS} mt_dlloader)
  set_target_properties(dl_caller_${variant} PROPERTIES SKIP_BUILD_RPATH TRUE
                        BUILD_WITH_INSTALL_RPATH TRUE INSTALL_RPATH "\$ORIGIN")
endforeach()
target_link_options(dl_caller_rpath PRIVATE -Wl,--disable-new-dtags)
target_link_options(dl_caller_runpath PRIVATE -Wl,--enable-new-dtags)
memtrace_victim(dl_caller_plain SOURCES ${P}/dl_caller.c LINK ${CMAKE_DL_LIBS})

# glibc's __libc_* allocation functions called directly.
memtrace_victim(libc_direct SOURCES ${P}/libc_direct.c)

# A program that loads a C and a C++ library with RTLD_DEEPBIND.
memtrace_victim(deepbind_main SOURCES ${P}/deepbind_main.c LINK ${CMAKE_DL_LIBS})
# the same with libstdc++ loaded from the start, as in a C++ program
memtrace_victim(deepbind_main_cxx SOURCES ${P}/deepbind_main.c
                LINK ${CMAKE_DL_LIBS} -Wl,--no-as-needed stdc++ -Wl,--as-needed)
add_library(mt_deeplib MODULE ${P}/deeplib.c)
target_compile_options(mt_deeplib PRIVATE -O0 -g)
add_library(mt_deeplib_cxx MODULE ${P}/deeplib_cxx.cc)
target_compile_options(mt_deeplib_cxx PRIVATE -O0 -g)
set_target_properties(mt_deeplib mt_deeplib_cxx PROPERTIES
                      LIBRARY_OUTPUT_DIRECTORY ${MT_PROGRAMS_DIR})
list(APPEND MT_VICTIMS mt_deeplib mt_deeplib_cxx)

# An error of dlopen kept for dlerror() while libc loads a gconv module.
memtrace_victim(dlerror_keep SOURCES ${P}/dlerror_keep.c LINK ${CMAKE_DL_LIBS})
add_library(mt_deeplib_ctor MODULE ${P}/deeplib_ctor.c)
target_compile_options(mt_deeplib_ctor PRIVATE -O0 -g)
set_target_properties(mt_deeplib_ctor PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${MT_PROGRAMS_DIR})
list(APPEND MT_VICTIMS mt_deeplib_ctor)
