"""Every protocol analyzer the dispatcher tries, in the order it tries them.

Add one import and one entry per analyzer.
"""

from __future__ import annotations

from sensor.proto.analyzer import Analyzer
from sensor.proto.analyzers.dcerpc import DCERPCAnalyzer
from sensor.proto.analyzers.dhcp import DHCPAnalyzer
from sensor.proto.analyzers.dns import DNSAnalyzer
from sensor.proto.analyzers.http import HTTPAnalyzer
from sensor.proto.analyzers.kerberos import KerberosAnalyzer
from sensor.proto.analyzers.ldap import LDAPAnalyzer
from sensor.proto.analyzers.smb import SMBAnalyzer
from sensor.proto.analyzers.smtp import SMTPAnalyzer
from sensor.proto.analyzers.ssh import SSHAnalyzer
from sensor.proto.analyzers.tls import TLSAnalyzer
from sensor.proto.analyzers.winrm import WinRMAnalyzer

ANALYZERS: tuple[type[Analyzer], ...] = (
    HTTPAnalyzer,
    DNSAnalyzer,
    SMTPAnalyzer,
    SSHAnalyzer,
    DHCPAnalyzer,
    TLSAnalyzer,
    DCERPCAnalyzer,
    SMBAnalyzer,
    KerberosAnalyzer,
    WinRMAnalyzer,
    LDAPAnalyzer,
)
