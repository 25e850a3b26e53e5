# One axis (build), several axes with an exclusion (test), a dependent of
# both that reads one instance's result, and a matrix without a target
# axis (shard) whose failed instance fails its dependent.
pipeline {
  name       = "matrix"
  on_failure = "continue"
}

module "testkit.sleep" "build" {
  matrix   = ["linux", "windows", "macos"]
  duration = "100ms"
}

module "testkit.echo" "test" {
  matrix {
    target  = ["linux", "windows", "macos"]
    go      = ["1.25", "1.26"]
    exclude = [{ target = "windows", go = "1.25" }]
  }
  text = "${matrix.target}/go${matrix.go}"
  tags = [matrix.target, matrix.go]
}

# Waits for every instance of build and test; reads the one built here.
module "testkit.echo" "release" {
  text       = "${module.build[run.os].value.target} ${module.build[run.os].value.module}"
  tags       = keys(module.test)
  count      = length(module.test)
  depends_on = [module.test]
}

module "shell" "shard" {
  matrix {
    shard = ["1", "2", "3"]
  }
  script = "echo shard ${matrix.shard}; test ${matrix.shard} != 2"
}

module "testkit.sleep" "merge" {
  duration   = "0s"
  depends_on = [module.shard]
}
