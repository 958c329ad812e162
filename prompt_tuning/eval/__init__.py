"""Evaluation: the seqio evaluator, the best-checkpoint policy, a saved prompt's eval."""
