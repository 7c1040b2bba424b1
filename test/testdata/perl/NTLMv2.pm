# NTLMv2.pm: switch Authen::NTLM (1.09) to NTLMv2 responses for swaks, which otherwise sends
# NTLMv1, which tern refuses. Loaded with PERL5LIB=<this directory> PERL5OPT=-MNTLMv2.
package NTLMv2;
use Authen::NTLM;
ntlmv2(1);
1;
