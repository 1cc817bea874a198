from effbench.asv_suites import make_suite

MaskedAttention = make_suite("attention/masked_attention")
Lm = make_suite("attention/lm")
