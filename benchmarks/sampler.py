from effbench.asv_suites import make_suite

DataSelection = make_suite("sampler/data_selection")
Memory = make_suite("sampler/memory")
Scoring = make_suite("sampler/scoring")
