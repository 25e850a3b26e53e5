pipeline {
  name = "bench"
}

module "shell" "m0_0" {
  command = ["/bin/true"]
}
module "shell" "m0_1" {
  command = ["/bin/true"]
}
module "shell" "m0_2" {
  command = ["/bin/true"]
}
module "shell" "m0_3" {
  command = ["/bin/true"]
}
module "shell" "m1_0" {
  command = ["/bin/true"]
  depends_on = [module.m0_0, module.m0_1]
}
module "shell" "m1_1" {
  command = ["/bin/true"]
  depends_on = [module.m0_1, module.m0_2]
}
module "shell" "m1_2" {
  command = ["/bin/true"]
  depends_on = [module.m0_0, module.m0_2]
}
module "shell" "m1_3" {
  command = ["/bin/true"]
  depends_on = [module.m0_1, module.m0_2]
}
module "shell" "m2_0" {
  command = ["/bin/true"]
  depends_on = [module.m1_0, module.m1_2]
}
module "shell" "m2_1" {
  command = ["/bin/true"]
  depends_on = [module.m1_0, module.m1_3]
}
module "shell" "m2_2" {
  command = ["/bin/true"]
  depends_on = [module.m1_0, module.m1_2]
}
module "shell" "m2_3" {
  command = ["/bin/true"]
  depends_on = [module.m1_1, module.m1_2]
}
