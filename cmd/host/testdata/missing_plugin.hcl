module "nosuchplugin" "x" {
  anything = 1
}
