pipeline {
  on_failure = "continue"
}

# A module reads a dependency's result through the plugin's Host service
# (sdk.Result) rather than through an HCL reference.
module "shell" "producer" {
  script      = "echo '{\"sha\": \"abc123\"}'"
  stdout_json = true
}

module "testkit.dep" "reader" {
  module     = "producer"
  depends_on = [module.producer]
}

module "testkit.dep" "sneaky" {
  module = "producer"
}

# sdk.Result into a typed struct checks the envelope's type.
module "testkit.echo" "echo" {
  text = "hi"
}

module "testkit.dep" "as_echo" {
  module     = "echo"
  as         = "echo"
  depends_on = [module.echo]
}

module "testkit.dep" "echo_as_ran" {
  module     = "echo"
  as         = "ran"
  depends_on = [module.echo]
}

module "testkit.dep" "shell_as_echo" {
  module     = "producer"
  as         = "echo"
  depends_on = [module.producer]
}
