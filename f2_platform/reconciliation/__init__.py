"""Cross-hop reconciliation (issue 19): pure comparison of what each hop holds for one receive hour, per
controller. The Dagster assets and checks that read the hops and store the results live in
f2_platform/defs/reconciliation/; docs/guarantees.md says what a passing check proves."""
