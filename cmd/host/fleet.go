package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/modpipe/modpipe/coordinator/etcd"
	"github.com/modpipe/modpipe/host"
	"github.com/modpipe/modpipe/host/config"
)

// fleetFlags are the flags of `host run` that make it one instance of a
// distributed run (R5.1, R5.2). Without --instance/--total (or their
// environment and CI equivalents) `host run` is a single-machine run.
type fleetFlags struct {
	instance, total int
	slots           int
	etcd            string
}

// addFleetFlags registers the distributed flags on the run command.
func addFleetFlags(c *cobra.Command, f *fleetFlags) {
	c.Flags().IntVar(&f.instance, "instance", 0, "this instance's index in a distributed run: 0 is the master, 1.. are workers (env MODPIPE_INSTANCE; GitLab, Buildkite and CircleCI parallel jobs are detected)")
	c.Flags().IntVar(&f.total, "total", 0, "the number of instances of the distributed run, master included (env MODPIPE_TOTAL); 1 means single-machine mode")
	c.Flags().IntVar(&f.slots, "slots", 0, "modules this instance runs at once in a distributed run (0 or unset: CPUs; a master runs modules too)")
	c.Flags().StringVar(&f.etcd, "etcd", "", "etcd endpoints host:port,... of a distributed run (env "+etcd.EndpointsEnv+"; else distributed { etcd { endpoints } } in the file)")
}

// roleFlags returns the distributed settings given on the command line:
// --instance and --total count only when they were given.
func (f *fleetFlags) roleFlags(c *cobra.Command, runID string) host.RoleFlags {
	rf := host.RoleFlags{RunID: runID}
	if c.Flags().Changed("instance") {
		rf.Instance = &f.instance
	}
	if c.Flags().Changed("total") {
		rf.Total = &f.total
	}
	return rf
}

// runFleet runs this process's part of the distributed run role: it
// builds the coordinator the pipeline file and flags name, and hands over
// to host.RunDistributed. A coordinator that cannot be reached is exit 4.
func runFleet(ctx context.Context, opts host.RunOptions, role host.Role, f fleetFlags) error {
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	o := opts.Options
	o.Environ = environ
	pre := host.PreloadInstance(o, role.Instance)
	block, loadErr := pre.Distributed(), pre.Err()
	cfg, err := etcdConfig(block, f.etcd, environ, opts.Logger)
	if err != nil {
		if loadErr != nil {
			// The file did not load, which is likely why no endpoints
			// were found: report the file's errors, as validate would.
			if verr := host.Validate(ctx, opts.Options); verr != nil {
				return verr
			}
		}
		return &host.ExitError{Code: host.ExitInvalid, Err: fmt.Errorf("instance %d of run %s: %w", role.Instance, role.RunID, err)}
	}

	coord, err := etcd.New(ctx, cfg)
	if err != nil {
		err = &host.ExitError{Code: host.ExitCoordinator, Err: fmt.Errorf("instance %d of run %s: %w", role.Instance, role.RunID, err)}
		if role.Instance == 0 {
			opts.RunID = role.RunID
			return host.NotStarted(opts, err)
		}
		return err
	}
	defer func() {
		if err := coord.Close(); err != nil {
			opts.Logger.Warn("close the etcd coordinator", "error", err)
		}
	}()

	opts.RunID = role.RunID
	_, err = host.RunDistributed(ctx, opts, host.DistributedOptions{
		Instance: role.Instance,
		Total:    role.Total,
		RunID:    role.RunID,
		Slots:    f.slots,
		Version:  version,
		// The instance runs from this load rather than parsing the file
		// again.
		Preloaded: pre,
	}, coord)
	return err
}

// etcdConfig builds the etcd coordinator's settings. Endpoints come from
// --etcd, else MODPIPE_ETCD_ENDPOINTS, else the file's etcd block, so a
// CI job can point a committed pipeline at its own cluster; the prefix,
// TLS files and credentials come from the file's etcd block.
func etcdConfig(block *config.Distributed, flag string, environ []string, logger hclog.Logger) (etcd.Config, error) {
	if block != nil && block.Coordinator != "" && !strings.EqualFold(block.Coordinator, "etcd") {
		return etcd.Config{}, fmt.Errorf("distributed { coordinator = %q } is not available to separate processes: the host CLI coordinates fleets through etcd; remove the attribute or set it to \"etcd\"", block.Coordinator)
	}
	cfg := etcd.Config{Logger: logger.Named("etcd")}
	var fileEndpoints []string
	if block != nil && block.Etcd != nil {
		e := block.Etcd
		fileEndpoints = e.Endpoints
		cfg.Prefix = e.Prefix
		cfg.Username, cfg.Password = e.Username, e.Password
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = e.CAFile, e.CertFile, e.KeyFile
	}
	switch {
	case strings.TrimSpace(flag) != "":
		cfg.Endpoints = etcd.ParseEndpoints(flag)
	case lookupEnv(environ, etcd.EndpointsEnv) != "":
		cfg.Endpoints = etcd.ParseEndpoints(lookupEnv(environ, etcd.EndpointsEnv))
	default:
		cfg.Endpoints = fileEndpoints
	}
	if len(cfg.Endpoints) == 0 {
		return etcd.Config{}, fmt.Errorf("a distributed run needs an etcd cluster, and none was given: pass --etcd host:port,..., set %s, or add distributed { etcd { endpoints = [\"host:2379\"] } } to the pipeline file", etcd.EndpointsEnv)
	}
	for _, e := range cfg.Endpoints {
		if err := etcd.CheckEndpoint(e); err != nil {
			return etcd.Config{}, err
		}
	}
	// The TLS files are this machine's: checked here, before joining, so
	// a missing one is the file's setting to fix (exit 2), not a
	// coordinator that cannot be reached.
	for _, f := range []struct{ attr, path string }{{"ca_file", cfg.CAFile}, {"cert_file", cfg.CertFile}, {"key_file", cfg.KeyFile}} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return etcd.Config{}, fmt.Errorf("distributed { etcd { %s } }: %w", f.attr, err)
		}
		fh.Close()
	}
	if err := cfg.CheckTLS(); err != nil {
		return etcd.Config{}, fmt.Errorf("distributed { etcd }: %w", err)
	}
	return cfg, nil
}

// lookupEnv returns the value of name in environ (os.Environ form).
func lookupEnv(environ []string, name string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}
