pipeline {
  on_failure = "continue"
}

variable "dir" {
  type = string
}

module "shell" "producer" {
  script      = "echo '{\"sha\": \"abc123\"}'"
  stdout_json = true
}

# Reads a field the producer's result does not have: fails at run time
# (the envelope is only known then), naming the fields it has.
module "template" "typo" {
  template    = "$${from.value.json.shaa}"
  from_module = "producer"
  depends_on  = [module.producer]
}

# Asks for the result of a module it does not depend on.
module "template" "sneaky" {
  template    = "$${from.status}"
  from_module = "producer"
}

module "template.checksum" "none" {
  patterns = ["*.nothing"]
  dir      = var.dir
}
