# cmake -P script: install, configure + build the consumer app, run it.
function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(STEP_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
run_step(${CMAKE_COMMAND} --install "${XATTN_BINARY_DIR}" --prefix "${WORK_DIR}/install")
set(extra "")
if(CUDA_COMPILER)
  list(APPEND extra "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}")
endif()
run_step(${CMAKE_COMMAND} -S "${APP_SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
         "-DCMAKE_PREFIX_PATH=${WORK_DIR}/install" "-DTorch_DIR=${Torch_DIR}" "-Dyaml-cpp_DIR=${yaml-cpp_DIR}"
         "-Dnlohmann_json_DIR=${nlohmann_json_DIR}" -DCMAKE_BUILD_TYPE=Release ${extra})
run_step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run_step("${WORK_DIR}/build/consumer_app" "${WORK_DIR}")
message(STATUS "consumer app said:\n${STEP_OUTPUT}")
if(NOT STEP_OUTPUT MATCHES "consumer ok")
  message(FATAL_ERROR "consumer app did not report success:\n${STEP_OUTPUT}")
endif()
