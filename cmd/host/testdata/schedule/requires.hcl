# requires: every requirement must be among this instance's capabilities,
# compared case-insensitively.
pipeline {
  name = "requires"
}

module "testkit.sleep" "anywhere" {
  duration = "0s"
}

module "testkit.sleep" "on_windows" {
  duration = "0s"
  requires = ["windows"]
}

module "testkit.sleep" "with_docker" {
  duration = "0s"
  requires = ["Docker", "gpu"]
}

module "testkit.sleep" "here" {
  duration = "0s"
  requires = [upper(run.os), run.arch]
}
