distributed {
  capability_timeout = "10m"
}

module "testkit.echo" "late" {
  requires = ["late"]
  text     = "ran late"
}
