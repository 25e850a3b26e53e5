# References into other modules' results, checked against the result
# types their kinds declare (results_test.go gives the kinds: git.facts,
# shell.exec with a dynamic json, file.checksum with a list of files, and
# old.x, which declares none).
module "git" "checkout" {}

module "shell" "build" {
  matrix = ["linux", "arm"]
}

module "file" "sums" {}

module "old" "legacy" {}

module "shell" "release" {
  matrix = ["linux", "arm"]
  run_if = !module.checkout.value.dirt
  command = [
    "release",
    module.checkout.value.sah,
    module.build[matrix.target].value.stdot,
    module.sums.value.files[0].pth,
  ]
  env = {
    SHORT = module.checkout.value.short_sha
  }
}

# All fine: nested, optional and dynamic parts, matrix instances, a plugin
# that declares no result type, and what try() tests for.
module "shell" "fine" {
  command = concat(
    [module.checkout.value.sha, module.build["linux"].value.stdout, module.build.arm.value.json.any.thing],
    [for f in module.sums.value.files : f.path],
    [module.sums.value.files[0].size, module.legacy.value.whatever],
    [try(module.checkout.value.tag, "untagged")],
  )
}
