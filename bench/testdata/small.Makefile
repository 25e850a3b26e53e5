all: m0_0 m0_1 m0_2 m0_3 m1_0 m1_1 m1_2 m1_3 m2_0 m2_1 m2_2 m2_3
.PHONY: all m0_0 m0_1 m0_2 m0_3 m1_0 m1_1 m1_2 m1_3 m2_0 m2_1 m2_2 m2_3
m0_0:
	@/bin/true
m0_1:
	@/bin/true
m0_2:
	@/bin/true
m0_3:
	@/bin/true
m1_0: m0_0 m0_1
	@/bin/true
m1_1: m0_1 m0_2
	@/bin/true
m1_2: m0_0 m0_2
	@/bin/true
m1_3: m0_1 m0_2
	@/bin/true
m2_0: m1_0 m1_2
	@/bin/true
m2_1: m1_0 m1_3
	@/bin/true
m2_2: m1_0 m1_2
	@/bin/true
m2_3: m1_1 m1_2
	@/bin/true
