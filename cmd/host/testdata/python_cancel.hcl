variable "dir" {
  type = string
}

# Hashing a huge sparse file takes minutes: the test interrupts the run
# while it hashes, and the plugin must stop the module within the host's
# grace rather than be killed as hung.
module "template.checksum" "huge" {
  patterns = ["huge.bin"]
  dir      = var.dir
}
