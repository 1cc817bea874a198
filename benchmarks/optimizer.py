from effbench.asv_suites import make_suite

Step = make_suite("optimizer/step")
Convergence = make_suite("optimizer/convergence")
