# A coordinator the host does not know.
distributed {
  coordinator = "etdc"
}

module "shell" "a" {
  command = ["true"]
}
