pipeline {
  on_failure = "continue"
}

distributed {
  capability_timeout = "1s"
}

# Each matrix instance requires its target: windows and macos exist only
# on one worker each.
module "testkit.echo" "build" {
  matrix = ["windows", "macos"]
  text   = "build for ${matrix.target} on ${run.instance}"
}

module "testkit.echo" "pinned" {
  pin_to_master = true
  text          = "pinned"
}

module "testkit.echo" "gpu" {
  requires = ["gpu", "cuda"]
  text     = "never"
}
