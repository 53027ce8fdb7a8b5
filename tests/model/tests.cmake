# The Promela model of the pause / registration / resume protocol
# (tests/model/zkroll.pml, docs/design.md "The protocol as the model states
# it"). Each case runs spin exhaustively: the *_off cases (and the ones
# that change a fix's order or scope) switch one fix off and pass only if
# spin finds the counterexample for the invariant that fix protects. Needs
# Debian's spin and a C compiler; without them the cases are skipped
# (exit 77), never passed.
set(ZKROLL_MODEL_CASES
  deploys crash maintenance single two_followers
  f1a_resume_off f1a_resume_session_only f1b_adopt_off f1c_guard_off
  f1c_guard_read_after_flag f2_sync_off f3_watch_off f3_watch_off_resync
  f4_fence_off learn_off learn_no_sync)
foreach(model_case IN LISTS ZKROLL_MODEL_CASES)
  add_test(NAME model_${model_case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/model/run_model.sh ${model_case})
  set_tests_properties(model_${model_case} PROPERTIES
    LABELS model TIMEOUT 600 SKIP_RETURN_CODE 77)
endforeach()
