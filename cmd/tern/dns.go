package main

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
)

func newDNSCmd(std stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "dns",
		Short:   "the DNS records of the local domains",
		Long:    `tern dns records prints the records a local domain must publish, and with --check compares them with DNS.`,
		Example: `  tern dns records example.com --check`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newDNSRecordsCmd(std))
	return cmd
}

func newDNSRecordsCmd(std stdio) *cobra.Command {
	var (
		c   = common{store: true}
		req app.DNSRecordsRequest
		ips []string
	)
	cmd := &cobra.Command{
		Use:   "records DOMAIN",
		Short: "print the DNS records DOMAIN must publish; --check compares them with DNS",
		Long: `Prints, ready for a zone file, every record a local domain needs: MX (the hostname, preference
10), the host's A/AAAA (with --ip; else a reminder), SPF (v=spf1 mx -all, with a comment when
mail leaves through a relayhost; and v=spf1 a -all for the host, whose bounces are checked by
their HELO name), DKIM for each key of the domain in the account store (tern
dkim list), DMARC (p=quarantine, aggregate reports to dmarc-reports@DOMAIN, and the
authorization record of RFC 7489 §7.1 when --dmarc-rua is at another domain), MTA-STS (the
_mta-sts record, whose id follows the policy; the policy file to serve over HTTPS is printed
as a comment, or alone with --mta-sts-policy), TLS-RPT (reports to tls-reports@DOMAIN), and the
submission SRV records of RFC 6186 for the submission listeners configured.

With --check, asks DNS (--resolver, or the configuration's delivery.resolver, or
/etc/resolv.conf's servers) and prints per record ok, missing, differs (with what DNS has) or
error; the exit status is 1 unless every record is ok. MX and SRV records are compared by
target (and port), DKIM records by key (p=), DMARC accepts p=reject too; SPF must name the MX
(mx or a:HOSTNAME; the host's record: a), or, with --ip, pass for each address as tern's own SPF check evaluates it.
TLS-RPT needs v=TLSRPTv1 and a rua of mailto: or https: URIs (another address than tern's is
only noted). It also fetches the MTA-STS policy file from https://mta-sts.DOMAIN/.well-known/mta-sts.txt
as senders do (RFC 8461 §3.3: the policy host's address through the same resolver, port
delivery.mta_sts_port, a certificate valid for mta-sts.DOMAIN under the system's roots, no
redirects, text/plain, at most 64 KiB) and says which lines differ from the policy tern prints:
mode, mx (one pattern must cover the hostname) and max_age.`,
		Example: `  tern dns records example.com
  tern dns records example.com --ip 192.0.2.25 --ip 2001:db8::25 --check
  tern dns records example.com --mta-sts-policy > mta-sts.txt`,
		Args: nargs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("%w: --ip %q is not an IP address", errUsage, s)
				}
				req.IPs = append(req.IPs, ip)
			}
			if cmd.Flags().Changed("resolver") {
				if err := config.CheckRemote(req.Resolver); err != nil {
					return fmt.Errorf("%w: --resolver %q: %v", errUsage, req.Resolver, err)
				}
			}
			cfg, err := c.load()
			if err != nil {
				return err
			}
			req.Domain = args[0]
			ok, err := app.DNSRecords(context.Background(), cfg, req, std.out)
			if err == nil && !ok {
				return exitCode(1)
			}
			return err
		},
	}
	fs := cmd.Flags()
	c.register(fs)
	c.registerAccounts(fs)
	c.registerDomains(fs)
	fs.StringVar(&req.Hostname, "hostname", "", "the MX host `NAME` (default: the configuration's hostname)")
	fs.StringArrayVar(&ips, "ip", nil, "a public `ADDRESS` of the host (repeatable): its A/AAAA records, and the SPF evaluation of --check")
	fs.StringVar(&req.MTASTSMode, "mta-sts-mode", "testing", "the MTA-STS `MODE`: testing or enforce")
	fs.StringVar(&req.DMARCReports, "dmarc-rua", "", "the `ADDRESS` for DMARC aggregate reports (default dmarc-reports@DOMAIN)")
	fs.StringVar(&req.TLSReports, "tls-rua", "", "the `ADDRESS` for TLS reports (default tls-reports@DOMAIN)")
	fs.BoolVar(&req.PolicyOnly, "mta-sts-policy", false, "print only the MTA-STS policy file")
	fs.BoolVar(&req.Check, "check", false, "compare the records with DNS; exit status 1 unless all are there")
	fs.StringVar(&req.Resolver, "resolver", "", "DNS server `HOST:PORT` for --check (default: the configuration's delivery.resolver, or /etc/resolv.conf's)")
	return cmd
}
