from effbench.asv_suites import make_suite

LinearCrossEntropy = make_suite("loss/linear_cross_entropy")
Classification = make_suite("loss/classification")
Contrastive = make_suite("loss/contrastive")
SigmoidPairwise = make_suite("loss/sigmoid_pairwise")
Memorization = make_suite("loss/memorization")
