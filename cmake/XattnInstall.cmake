# `cmake --install` lays out headers, static libraries and a CMake package so that an
# application can `find_package(xattn)` and link `xattn::xattn`.
include(CMakePackageConfigHelpers)

set(XATTN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/xattn")

set(_xattn_video_targets xattn_video)
if(TARGET xattn_video_base)
  list(APPEND _xattn_video_targets xattn_video_base)
endif()
install(TARGETS xattn_core_base xattn_core xattn_kernels xattn_kernels_headers ${_xattn_video_targets}
                xattn_pipelines xattn_eval xattn_all xattn_yaml xattn_torch
        EXPORT xattnTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Public headers keep their repo-rooted paths: #include "core/attention/attention.h".
foreach(dir core kernels video pipelines eval)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${dir}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
endforeach()

install(EXPORT xattnTargets NAMESPACE xattn:: DESTINATION ${XATTN_INSTALL_CMAKEDIR})

set(XATTN_CONFIG_CUDA_ENABLED ${XATTN_CUDA_ENABLED})
set(XATTN_CONFIG_VIDEO_ENABLED ${XATTN_VIDEO_ENABLED})
set(XATTN_CONFIG_TEXT_ENABLED ${XATTN_TEXT_ENABLED})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/xattnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/xattnConfig.cmake INSTALL_DESTINATION ${XATTN_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/xattnConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/xattnConfig.cmake ${PROJECT_BINARY_DIR}/xattnConfigVersion.cmake
        DESTINATION ${XATTN_INSTALL_CMAKEDIR})
