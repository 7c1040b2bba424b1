package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
)

func newSPFCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "spf",
		Short:   "SPF (RFC 7208) tools",
		Long:    `Sender Policy Framework tools: tern spf check evaluates a sender's SPF policy as tern will.`,
		Example: `  tern spf check --ip 192.0.2.1 --helo mail.example.com --from alice@example.com`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newSPFCheckCmd(std))
	return cmd
}

func newSPFCheckCmd(std stdio) *cobra.Command {
	var (
		configPath, ip string
		r              app.SPFCheckRequest
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "evaluate SPF for a client's address, HELO name and MAIL FROM address",
		Long: `Evaluates SPF (RFC 7208) as tern does for mail it receives, and prints the result (pass, fail,
softfail, neutral, none, temperror or permerror), the identity checked as an
Authentication-Results header names it (smtp.mailfrom, or smtp.helo for the null sender),
the domain whose policy was evaluated and why. DNS goes through --resolver, or the
configuration's delivery.resolver, or the servers of /etc/resolv.conf. The exit status is 0
whatever the result; 1 when SPF could not be evaluated at all, 2 for a usage mistake.`,
		Example: `  tern spf check --ip 192.0.2.1 --helo mail.example.com --from alice@example.com
  tern spf check --ip 2001:db8::1 --helo mail.example.com --from ''   # the null sender: HELO
  tern spf check --ip 192.0.2.1 --helo h.example --from a@example.com --resolver 127.0.0.1:53`,
		Args: nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if r.IP = net.ParseIP(ip); r.IP == nil {
				return fmt.Errorf("%w: --ip %q is not an IP address", errUsage, ip)
			}
			if r.Helo == "" {
				return fmt.Errorf("%w: --helo is required", errUsage)
			}
			if err := resolverFlag(cmd, configPath, &r.Resolver); err != nil {
				return err
			}
			return app.SPFCheckCommand(context.Background(), r, std.out)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&ip, "ip", "", "the client's `ADDRESS` (IPv4 or IPv6)")
	fs.StringVar(&r.Helo, "helo", "", "the `NAME` the client gave in HELO/EHLO")
	fs.StringVar(&r.From, "from", "", "the MAIL FROM `ADDRESS` (empty: the null sender, whose HELO name is checked)")
	fs.StringVar(&r.Resolver, "resolver", "", "DNS server `HOST:PORT` (default: the configuration's delivery.resolver, or /etc/resolv.conf's)")
	fs.DurationVar(&r.Timeout, "timeout", 20*time.Second, "bound on the whole evaluation (RFC 7208 §4.6.4 asks for at least 20s)")
	fs.StringVar(&configPath, "config", "", "TOML configuration `FILE` (optional), for delivery.resolver")
	return cmd
}
