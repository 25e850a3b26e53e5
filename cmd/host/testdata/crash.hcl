# The testkit plugin dies mid-module; the next module runs on a restarted
# plugin process.
module "testkit.crash" "boom" {
  message        = "the plugin fell over"
  ignore_failure = true
}

module "testkit.echo" "after" {
  text       = "still here"
  depends_on = [module.boom]
}

module "testkit.exit" "gone" {
  code           = 7
  message        = "exiting with 7"
  ignore_failure = true
  depends_on     = [module.after]
}

module "testkit.echo" "last" {
  text       = "after the exit"
  depends_on = [module.gone]
}
