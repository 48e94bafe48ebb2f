# Install rules: the library, the public headers under include/zae/, and a CMake
# package so that a downstream project can do
#   find_package(zae REQUIRED)
#   target_link_libraries(app PRIVATE zae::zae)
include(CMakePackageConfigHelpers)

install(TARGETS zae EXPORT zaeTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/zae)

foreach(layer engine kernels nn io dist trainer)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${layer})
    install(DIRECTORY ${layer} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/zae
      FILES_MATCHING PATTERN "*.h"
      PATTERN "cuda" EXCLUDE)
  endif()
endforeach()

install(EXPORT zaeTargets NAMESPACE zae:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/zae)
configure_package_config_file(cmake/zaeConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/zaeConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/zae)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/zaeConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/zaeConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/zaeConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/zae)
