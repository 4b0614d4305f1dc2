/* addr-proto: every address the kernel holds, with its protocol (IFA_PROTO, Linux >= 5.18), one
 * per line: "ADDRESS PROTO" (0: none set). Bookworm's iproute2 6.1 can neither set nor show an
 * address's protocol, so the VM tier's cases read it with this, over rtnetlink. Built static by
 * scripts/vm/run.py for the guest. */
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IFA_PROTO
#define IFA_PROTO 11
#endif

int main(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  if (fd < 0) { perror("addr-proto: socket"); return 1; }
  struct { struct nlmsghdr header; struct ifaddrmsg body; } request = {
    .header = { .nlmsg_len = sizeof request, .nlmsg_type = RTM_GETADDR,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
    .body = { .ifa_family = AF_UNSPEC },
  };
  if (send(fd, &request, sizeof request, 0) < 0) { perror("addr-proto: send"); return 1; }
  static char buffer[1 << 16];
  for (;;) {
    ssize_t length = recv(fd, buffer, sizeof buffer, 0);
    if (length < 0) { perror("addr-proto: recv"); return 1; }
    for (struct nlmsghdr *message = (struct nlmsghdr *)buffer; NLMSG_OK(message, length);
         message = NLMSG_NEXT(message, length)) {
      if (message->nlmsg_type == NLMSG_DONE) return 0;
      if (message->nlmsg_type == NLMSG_ERROR) { fprintf(stderr, "addr-proto: dump refused\n"); return 1; }
      struct ifaddrmsg *address = NLMSG_DATA(message);
      int rest = IFA_PAYLOAD(message);
      char text[INET6_ADDRSTRLEN] = "";
      unsigned proto = 0;
      for (struct rtattr *attribute = IFA_RTA(address); RTA_OK(attribute, rest);
           attribute = RTA_NEXT(attribute, rest)) {
        if (attribute->rta_type == IFA_ADDRESS && !text[0])
          inet_ntop(address->ifa_family, RTA_DATA(attribute), text, sizeof text);
        if (attribute->rta_type == IFA_LOCAL)
          inet_ntop(address->ifa_family, RTA_DATA(attribute), text, sizeof text);
        if (attribute->rta_type == IFA_PROTO)
          proto = *(unsigned char *)RTA_DATA(attribute);
      }
      printf("%s %u\n", text, proto);
    }
  }
}
