import torch

from skipfold.models import FlipAveraged, build_model


def test_the_logits_are_the_mean_over_the_image_and_its_mirror():
    torch.manual_seed(0)
    network = build_model("bn", 10, 1).eval()
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        averaged = FlipAveraged(network)(images)
        expected = (network(images) + network(images.flip(-1))) / 2
        plain = network(images)
    assert torch.allclose(averaged, expected, atol=1e-5)
    assert not torch.allclose(averaged, plain, atol=1e-3)  # the mirror changes the answer


def test_a_mirror_symmetric_image_gets_the_plain_logits():
    torch.manual_seed(0)
    network = build_model("skipinit", 10, 1, alpha_init=0.5).eval()
    half = torch.randn(2, 3, 32, 16)
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)
    with torch.no_grad():
        assert torch.allclose(FlipAveraged(network)(symmetric), network(symmetric), atol=1e-5)
