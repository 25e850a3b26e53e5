module "shell" "a" {
  command = ["echo"
}
