module "shell" "a" {}

module "shell" "a" {}

module "shell" "bad name" {}

module "she ll" "c" {}

module "shell" {}

module "shell" "d" {
  script = "${run.oss} ${matrix.target} ${foo.bar} ${module} ${var}"
}
