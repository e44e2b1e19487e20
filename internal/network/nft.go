package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName names the daemon's two tables: "bridge agentiso" (what may cross
// the bridge between ports) and "inet agentiso" (what may reach the host,
// leave it, or be forwarded to a VM). The daemon touches no other table.
const TableName = "agentiso"

// Registers: reg1 is a 16-byte register; concatenations are loaded into
// consecutive 4-byte registers from reg32.
const (
	reg1  = unix.NFT_REG_1
	reg32 = unix.NFT_REG32_00
)

// Chain priorities: the bridge family's filter priority, and the inet
// family's filter and NAT priorities.
const (
	prioBridgeFilter = -200
	prioFilter       = 0
	prioDNAT         = -100
	prioSNAT         = 100
)

// Header offsets and values the rules match on.
const (
	etherTypeOffset = 12 // in the Ethernet header
	etherSrcOffset  = 6
	ipSrcOffset     = 12 // in the IPv4 header
	ipDstOffset     = 16
	arpSHAOffset    = 8 // sender hardware address, in the ARP header
	arpSPAOffset    = 14
	tcpDstOffset    = 2
	ctDirReply      = 1      // IP_CT_DIR_REPLY
	ctStatusDNAT    = 1 << 5 // IPS_DST_NAT
	rtnLocal        = unix.RTN_LOCAL
)

// Apply replaces the daemon's tables with what rs says, in one netlink
// transaction: the kernel switches from the old rules to the new ones at
// once, or, if anything is refused, keeps the old ones. It works in the
// network namespace the process runs in.
func Apply(rs Ruleset) error {
	if err := rs.Validate(); err != nil {
		return fmt.Errorf("invalid ruleset: %w", err)
	}
	n := rs.normalized()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening netlink for nftables: %w", err)
	}
	b := &builder{c: c}
	b.bridgeTable(&n)
	b.inetTable(&n)
	if b.err != nil {
		return b.err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("applying nftables rules: %w", err)
	}
	return nil
}

// Remove deletes the daemon's tables, for uninstall. Tables that do not
// exist are not an error; no other table is touched.
func Remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening netlink for nftables: %w", err)
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyBridge, nftables.TableFamilyINet} {
		t := &nftables.Table{Name: TableName, Family: fam}
		// Adding first makes the delete valid when the table is absent.
		c.AddTable(t)
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("removing nftables tables: %w", err)
	}
	return nil
}

// builder queues one table's objects on a connection.
type builder struct {
	c   *nftables.Conn
	t   *nftables.Table
	err error
}

// table replaces the table of family fam: add (so the delete is valid when
// it does not exist), delete, add again, all in the one transaction.
func (b *builder) table(fam nftables.TableFamily) {
	t := &nftables.Table{Name: TableName, Family: fam}
	b.c.AddTable(t)
	b.c.DelTable(t)
	b.t = b.c.AddTable(&nftables.Table{Name: TableName, Family: fam})
}

func (b *builder) set(name string, key nftables.SetDatatype, elems []nftables.SetElement) *nftables.Set {
	s := &nftables.Set{Table: b.t, Name: name, KeyType: key}
	if len(nftables.ConcatSetTypeElements(key)) > 1 {
		s.Concatenation = true
	}
	switch key {
	case nftables.TypeInetService:
		s.KeyByteOrder = binaryutil.BigEndian
	case nftables.TypeIFName:
		// nft prints a string key in host order; the bytes are the same.
		s.KeyByteOrder = binaryutil.NativeEndian
	}
	if err := b.c.AddSet(s, elems); err != nil && b.err == nil {
		b.err = fmt.Errorf("adding set %s: %w", name, err)
	}
	return s
}

func (b *builder) baseChain(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int32) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return b.c.AddChain(&nftables.Chain{
		Name: name, Table: b.t, Type: typ, Hooknum: hook,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio)), Policy: &accept,
	})
}

func (b *builder) chain(name string) *nftables.Chain {
	return b.c.AddChain(&nftables.Chain{Name: name, Table: b.t})
}

// rule appends a rule with a comment that says why it is there.
func (b *builder) rule(ch *nftables.Chain, comment string, exprs ...[]expr.Any) {
	var all []expr.Any
	for _, e := range exprs {
		all = append(all, e...)
	}
	b.c.AddRule(&nftables.Rule{
		Table: b.t, Chain: ch, Exprs: all,
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
	})
}

// bridgeTable is what may cross the bridge. Frames from our TAPs must carry
// their VM's own MAC and IPv4 address, or be ARP about that address only
// (findings H-6, M-3); anything else from them (IPv6, other EtherTypes,
// spoofed addresses) is dropped. Frames between two TAPs pass only for an
// allowed pair, statelessly: there is no conntrack in this family, so no
// established connection can outlive a policy change (finding M-2). Bridged
// traffic is isolated here, where it is seen, not in the inet family, which
// bridged frames never reach.
func (b *builder) bridgeTable(rs *Ruleset) {
	b.table(nftables.TableFamilyBridge)

	var vmElems, peerElems []nftables.SetElement
	tapOf := map[netip.Addr]string{}
	for _, vm := range rs.VMs {
		tapOf[vm.IP] = vm.TAP
		ip := vm.IP.As4()
		vmElems = append(vmElems, nftables.SetElement{Key: concat(ifname(vm.TAP), vm.MAC, ip[:])})
	}
	for _, p := range rs.Peers {
		a, b := tapOf[p.A], tapOf[p.B]
		peerElems = append(peerElems,
			nftables.SetElement{Key: concat(ifname(a), ifname(b))},
			nftables.SetElement{Key: concat(ifname(b), ifname(a))})
	}
	vms := b.set("vms", nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeEtherAddr, nftables.TypeIPAddr), vmElems)
	peers := b.set("peers", nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName), peerElems)

	pre := b.baseChain("prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, prioBridgeFilter)
	fromVM := b.chain("from_vm")
	b.rule(pre, "every frame a TAP of ours sends is checked", iifPrefix(TAPPrefix), jump(fromVM.Name))

	b.rule(fromVM, "never to the host's loopback addresses",
		etherType(unix.ETH_P_IP), loadNet(ipDstOffset, 1, reg1), eq(reg1, []byte{127}), verdict(expr.VerdictDrop))
	b.rule(fromVM, "IPv4 only from the VM's own MAC and address (H-6)",
		etherType(unix.ETH_P_IP),
		meta(expr.MetaKeyIIFNAME, reg32), loadLink(etherSrcOffset, 6, reg32+4), loadNet(ipSrcOffset, 4, reg32+6),
		lookup(reg32, vms), verdict(expr.VerdictAccept))
	b.rule(fromVM, "ARP only about the VM's own MAC and address (M-3)",
		etherType(unix.ETH_P_ARP), arpIPv4OverEthernet(),
		meta(expr.MetaKeyIIFNAME, reg32), loadLink(etherSrcOffset, 6, reg32+4), loadNet(arpSPAOffset, 4, reg32+6),
		lookup(reg32, vms),
		meta(expr.MetaKeyIIFNAME, reg32), loadNet(arpSHAOffset, 6, reg32+4), loadNet(arpSPAOffset, 4, reg32+6),
		lookup(reg32, vms), verdict(expr.VerdictAccept))
	b.rule(fromVM, "everything else from a VM: spoofed, IPv6, other EtherTypes", verdict(expr.VerdictDrop))

	fwd := b.baseChain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, prioBridgeFilter)
	between := b.chain("between_vms")
	b.rule(fwd, "frames from a VM to another port", iifPrefix(TAPPrefix), jump(between.Name))
	b.rule(fwd, "frames to a VM from another port", oifPrefix(TAPPrefix), jump(between.Name))
	b.rule(between, "an allowed pair, both directions, stateless (M-2)",
		meta(expr.MetaKeyIIFNAME, reg32), meta(expr.MetaKeyOIFNAME, reg32+4), lookup(reg32, peers), verdict(expr.VerdictAccept))
	b.rule(between, "every other pair is isolated", verdict(expr.VerdictDrop))
}

// inetTable is what may reach the host from VMs, leave through the host,
// or be forwarded to VMs, and the NAT for internet access and port
// forwards. Its base chains accept whatever does not concern the bridge,
// so the host's own traffic and other tables are left alone (finding L-2);
// what does concern the bridge goes to regular chains that end in drop.
func (b *builder) inetTable(rs *Ruleset) {
	b.table(nftables.TableFamilyINet)
	br := ifname(rs.Bridge)
	gw := rs.Gateway().As4()

	var svcElems, netElems, peerElems, ifElems, inElems, fwdElems []nftables.SetElement
	for _, p := range rs.VMServices {
		svcElems = append(svcElems, nftables.SetElement{Key: port(p)})
	}
	for _, vm := range rs.VMs {
		ip := vm.IP.As4()
		if vm.Internet {
			netElems = append(netElems, nftables.SetElement{Key: ip[:]})
		}
		for _, p := range vm.AllowedPorts {
			inElems = append(inElems, nftables.SetElement{Key: concat(ip[:], port(p))})
		}
	}
	for _, p := range rs.Peers {
		a, c := p.A.As4(), p.B.As4()
		peerElems = append(peerElems,
			nftables.SetElement{Key: concat(a[:], c[:])},
			nftables.SetElement{Key: concat(c[:], a[:])})
	}
	for _, n := range rs.HostInterfaces {
		ifElems = append(ifElems, nftables.SetElement{Key: ifname(n)})
	}
	for _, f := range rs.Forwards {
		ip := f.IP.As4()
		fwdElems = append(fwdElems, nftables.SetElement{Key: concat(ip[:], port(f.GuestPort))})
	}
	ipPort := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	services := b.set("vm_services", nftables.TypeInetService, svcElems)
	internet := b.set("internet", nftables.TypeIPAddr, netElems)
	peers := b.set("peers", nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr), peerElems)
	hostIfs := b.set("host_interfaces", nftables.TypeIFName, ifElems)
	inbound := b.set("inbound", ipPort, inElems)
	targets := b.set("forward_targets", ipPort, fwdElems)

	// VM -> host (M-1).
	in := b.baseChain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, prioFilter)
	toHost := b.chain("vm_to_host")
	b.rule(in, "traffic from VMs to the host", meta(expr.MetaKeyIIFNAME, reg1), eq(reg1, br), jump(toHost.Name))
	b.rule(toHost, "answers to connections the host opened", ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	b.rule(toHost, "what the daemon serves to VMs, on the gateway only",
		ipv4(), loadNet(ipDstOffset, 4, reg1), eq(reg1, gw[:]), tcp(),
		loadTransport(tcpDstOffset, 2, reg1), lookup(reg1, services), verdict(expr.VerdictAccept))
	b.rule(toHost, "every other host service is closed to VMs (M-1)", verdict(expr.VerdictDrop))

	// Routed traffic to and from VMs.
	fwd := b.baseChain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, prioFilter)
	fromVM := b.chain("from_vm")
	toVM := b.chain("to_vm")
	b.rule(fwd, "routed traffic from VMs", meta(expr.MetaKeyIIFNAME, reg1), eq(reg1, br), jump(fromVM.Name))
	b.rule(fwd, "routed traffic to VMs", meta(expr.MetaKeyOIFNAME, reg1), eq(reg1, br), jump(toVM.Name))

	b.rule(fromVM, "IPv4 only", notIPv4(), verdict(expr.VerdictDrop))
	b.rule(fromVM, "VM to VM through the host: an allowed pair, stateless (M-2)",
		meta(expr.MetaKeyOIFNAME, reg1), eq(reg1, br), ipv4(),
		loadNet(ipSrcOffset, 4, reg32), loadNet(ipDstOffset, 4, reg32+1), lookup(reg32, peers), verdict(expr.VerdictAccept))
	b.rule(fromVM, "every other VM to VM path is closed, whatever conntrack says",
		meta(expr.MetaKeyOIFNAME, reg1), eq(reg1, br), verdict(expr.VerdictDrop))
	b.rule(fromVM, "answers within connections made to the VM (port forwards, allowed ports)",
		ctDirection(ctDirReply), verdict(expr.VerdictAccept))
	b.rule(fromVM, "out to the internet when the VM may reach it",
		ipv4(), loadNet(ipSrcOffset, 4, reg1), lookup(reg1, internet), verdict(expr.VerdictAccept))
	b.rule(fromVM, "nothing else leaves: no DNS, no other egress (L-4)", verdict(expr.VerdictDrop))

	b.rule(toVM, "IPv4 only", notIPv4(), verdict(expr.VerdictDrop))
	b.rule(toVM, "answers within connections the VM made", ctDirection(ctDirReply), verdict(expr.VerdictAccept))
	b.rule(toVM, "port forwards arriving on a host interface, after DNAT",
		ctStatus(ctStatusDNAT), ipv4(), tcp(),
		loadNet(ipDstOffset, 4, reg32), loadTransport(tcpDstOffset, 2, reg32+1), lookup(reg32, targets), verdict(expr.VerdictAccept))
	b.rule(toVM, "a VM's allowed inbound ports, from host interfaces only",
		meta(expr.MetaKeyIIFNAME, reg1), lookup(reg1, hostIfs), ipv4(), tcp(),
		loadNet(ipDstOffset, 4, reg32), loadTransport(tcpDstOffset, 2, reg32+1), lookup(reg32, inbound), verdict(expr.VerdictAccept))
	b.rule(toVM, "nothing else reaches a VM", verdict(expr.VerdictDrop))

	// Port forwards (H-7, L-1): DNAT only for connections arriving on a
	// configured host interface and addressed to the host, or made on the
	// host itself through loopback.
	pre := b.baseChain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, prioDNAT)
	out := b.baseChain("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, prioDNAT)
	for _, f := range rs.Forwards {
		to := dnat(f.IP, f.GuestPort)
		comment := fmt.Sprintf("port forward %d -> %v:%d", f.HostPort, f.IP, f.GuestPort)
		b.rule(pre, comment+" from a host interface",
			meta(expr.MetaKeyIIFNAME, reg1), lookup(reg1, hostIfs), ipv4(), fibDaddrLocal(), tcp(),
			loadTransport(tcpDstOffset, 2, reg1), eq(reg1, port(f.HostPort)), to)
		b.rule(out, comment+" from loopback",
			meta(expr.MetaKeyOIFNAME, reg1), eq(reg1, ifname("lo")), ipv4(), tcp(),
			loadTransport(tcpDstOffset, 2, reg1), eq(reg1, port(f.HostPort)), to)
	}

	post := b.baseChain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, prioSNAT)
	b.rule(post, "port forwards from loopback leave with the gateway's address",
		meta(expr.MetaKeyOIFNAME, reg1), eq(reg1, br), ipv4(),
		loadNet(ipSrcOffset, 1, reg1), eq(reg1, []byte{127}), []expr.Any{&expr.Masq{}})
	b.rule(post, "internet access through NAT",
		meta(expr.MetaKeyOIFNAME, reg1), neq(reg1, br), ipv4(),
		loadNet(ipSrcOffset, 4, reg1), lookup(reg1, internet), []expr.Any{&expr.Masq{}})
}

// Expression helpers. Each returns the expressions of one match.

func meta(k expr.MetaKey, reg uint32) []expr.Any {
	return []expr.Any{&expr.Meta{Key: k, Register: reg}}
}

func eq(reg uint32, data []byte) []expr.Any {
	return []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: data}}
}

func neq(reg uint32, data []byte) []expr.Any {
	return []expr.Any{&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: data}}
}

func load(base expr.PayloadBase, off, n, reg uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: reg, Base: base, Offset: off, Len: n}}
}

func loadLink(off, n, reg uint32) []expr.Any { return load(expr.PayloadBaseLLHeader, off, n, reg) }
func loadNet(off, n, reg uint32) []expr.Any  { return load(expr.PayloadBaseNetworkHeader, off, n, reg) }
func loadTransport(off, n, reg uint32) []expr.Any {
	return load(expr.PayloadBaseTransportHeader, off, n, reg)
}

func lookup(reg uint32, s *nftables.Set) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID}}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

// iifPrefix matches an input interface whose name starts with p (nft's
// `iifname "p*"`).
func iifPrefix(p string) []expr.Any {
	return append(meta(expr.MetaKeyIIFNAME, reg1), eq(reg1, []byte(p))...)
}

func oifPrefix(p string) []expr.Any {
	return append(meta(expr.MetaKeyOIFNAME, reg1), eq(reg1, []byte(p))...)
}

func etherType(t uint16) []expr.Any {
	return append(loadLink(etherTypeOffset, 2, reg1), eq(reg1, binaryutil.BigEndian.PutUint16(t))...)
}

// arpIPv4OverEthernet matches ARP for IPv4 over Ethernet only, so the
// address fields are where the other matches read them.
func arpIPv4OverEthernet() []expr.Any {
	var e []expr.Any
	e = append(e, loadNet(0, 2, reg1)...)
	e = append(e, eq(reg1, binaryutil.BigEndian.PutUint16(1))...) // htype Ethernet
	e = append(e, loadNet(2, 2, reg1)...)
	e = append(e, eq(reg1, binaryutil.BigEndian.PutUint16(unix.ETH_P_IP))...)
	e = append(e, loadNet(4, 1, reg1)...)
	e = append(e, eq(reg1, []byte{6})...)
	e = append(e, loadNet(5, 1, reg1)...)
	return append(e, eq(reg1, []byte{4})...)
}

func ipv4() []expr.Any {
	return append(meta(expr.MetaKeyNFPROTO, reg1), eq(reg1, []byte{unix.NFPROTO_IPV4})...)
}

func notIPv4() []expr.Any {
	return append(meta(expr.MetaKeyNFPROTO, reg1), neq(reg1, []byte{unix.NFPROTO_IPV4})...)
}

func tcp() []expr.Any {
	return append(meta(expr.MetaKeyL4PROTO, reg1), eq(reg1, []byte{unix.IPPROTO_TCP})...)
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func ctStatus(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func ctDirection(d byte) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeyDIRECTION},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{d}},
	}
}

func fibDaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(rtnLocal)},
	}
}

func dnat(ip netip.Addr, p uint16) []expr.Any {
	a := ip.As4()
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: a[:]},
		&expr.Immediate{Register: reg1 + 1, Data: port(p)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4,
			RegAddrMin: reg1, RegProtoMin: reg1 + 1, Specified: true},
	}
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL-padded.
func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// concat joins the fields of a concatenated set key, each padded to a
// multiple of 4 bytes, as the kernel lays them out in registers.
func concat(fields ...[]byte) []byte {
	var out []byte
	for _, f := range fields {
		out = append(out, f...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	return out
}
